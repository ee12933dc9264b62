"""Reductions: ReduceMean/Sum/Max/Min/Prod, ReduceL1/L2/SumSquare/LogSum/LogSumExp; ArgMax/ArgMin.

Reductions are layout-agnostic (``layout.py`` permutes their axes), so they run on the ONNX layout.
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import BOOL, F32, NUMERIC, all_checks, dtype_check

_BASIC = {"ReduceMean": "MEAN", "ReduceSum": "SUM", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN",
          "ReduceProd": "REDUCE_PROD"}
_BOOL = {"ReduceMax": "REDUCE_ANY", "ReduceMin": "REDUCE_ALL"}
# ONNX op -> (pre-op on x, base reduction, post-op on the result)
_COMPOSED = {"ReduceL1": ("ABS", "SUM", None), "ReduceL2": ("SQUARE", "SUM", "SQRT"),
             "ReduceSumSquare": ("SQUARE", "SUM", None), "ReduceLogSum": (None, "SUM", "LOG")}


def _axes(node, ctx):
    """Reduced axes (sorted, non-negative), or None when the node reduces nothing (noop_with_empty_axes)."""
    a = ctx.attrs(node)
    rank = ctx.rank(node.input[0])
    if "axes" in a:
        axes = a["axes"]
    elif ctx.inp(node, 1):
        axes = ctx.const(node.input[1]).tolist()
    else:
        axes = []
    if not axes:
        return None if a.get("noop_with_empty_axes", 0) else list(range(rank))
    return sorted({int(x) % rank for x in axes})


def _check(node, ctx):
    if ctx.inp(node, 1) and ctx.const(node.input[1]) is None:
        return "axes computed at run time are not supported"
    return None


def _reducer(ctx, opcode: str, x: str, axes, keep: bool, out: str) -> str:
    opts = fb.ReducerOptionsT()
    opts.keepDims = keep
    ctx.emit(opcode, [x, ctx.constant(np.asarray(axes, np.int32), "axes")], [out], opts)
    return out


def _reduce(node, ctx, pre, base, post):
    x, out = ctx.tensor(node.input[0]), node.output[0]
    axes = _axes(node, ctx)
    dt = ctx.dtype(node.input[0])
    if axes is None:
        ctx.reshape(x, ctx.shape(out), out=ctx.output(out))
        return
    if dt == np.bool_:
        base = _BOOL[node.op_type]
    if pre:
        y = ctx.new(f"{out}_pre", ctx.shape(node.input[0]), dt)
        ctx.emit(pre, [x], [y])
        x = y
    keep = bool(ctx.attrs(node).get("keepdims", 1))
    r = _reducer(ctx, base, x, axes, keep, ctx.new(f"{out}_red", ctx.shape(out), dt) if post else ctx.output(out))
    if post:
        ctx.emit(post, [r], [ctx.output(out)])


def _register(op: str, pre, base, post):
    def convert(node, ctx):
        _reduce(node, ctx, pre, base, post)
    convert.__doc__ = " + ".join(p for p in (pre, base, post) if p) + (
        " (REDUCE_ANY / REDUCE_ALL for bool)" if op in _BOOL else "")
    allowed = F32 if pre or post or base == "MEAN" else NUMERIC | (BOOL if op in _BOOL else set())
    types = dtype_check(allowed, what="inputs (data)")
    TFLITE.converts(op, since=1, check=all_checks(_check, lambda n, c: types(_only_data(n), c)))(convert)


@TFLITE.converts("ReduceLogSumExp", since=1,
                 check=all_checks(_check, lambda n, c: dtype_check(F32, what="inputs (data)")(_only_data(n), c)))
def reduce_log_sum_exp(node, ctx):
    """REDUCE_MAX m, then LOG(SUM(EXP(x - m))) + m (no overflow on large logits)"""
    x, out = ctx.tensor(node.input[0]), node.output[0]
    axes = _axes(node, ctx)
    if axes is None:
        ctx.reshape(x, ctx.shape(out), out=ctx.output(out))
        return
    shape = ctx.shape(node.input[0])
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    m = _reducer(ctx, "REDUCE_MAX", x, axes, True, ctx.new(f"{out}_max", kept, np.float32))
    shifted = ctx.new(f"{out}_shifted", shape, np.float32)
    ctx.emit("SUB", [x, m], [shifted], fb.SubOptionsT())
    e = ctx.unary("EXP", shifted, ctx.new(f"{out}_exp", shape, np.float32))
    keep = bool(ctx.attrs(node).get("keepdims", 1))
    total = _reducer(ctx, "SUM", e, axes, keep, ctx.new(f"{out}_sum", ctx.shape(out), np.float32))
    log = ctx.unary("LOG", total, ctx.new(f"{out}_log", ctx.shape(out), np.float32))
    m_out = m if keep else ctx.reshape(m, ctx.shape(out))
    ctx.emit("ADD", [log, m_out], [ctx.output(out)], fb.AddOptionsT())


class _only_data:  # noqa: N801 - a node view exposing just the data input to dtype_check
    def __init__(self, node):
        self.input = node.input[:1]


for _op, _code in _BASIC.items():
    _register(_op, None, _code, None)
for _op, (_pre, _base, _post) in _COMPOSED.items():
    _register(_op, _pre, _base, _post)


def _arg(node, ctx, opcode, opt_cls):
    rank = ctx.rank(node.input[0])
    a = ctx.attrs(node)
    axis = int(a.get("axis", 0)) % rank
    out = node.output[0]
    opts = opt_cls()
    opts.outputType = fb.TensorType.INT64
    shape = ctx.shape(node.input[0])
    reduced = tuple(d for i, d in enumerate(shape) if i != axis)
    keep, last = a.get("keepdims", 1), a.get("select_last_index", 0)
    x = ctx.tensor(node.input[0])
    if last:  # first hit on the reversed axis is the last one: index = dim - 1 - i
        xr = ctx.new(f"{out}_rev", shape, ctx.dtype(node.input[0]))
        ctx.emit("REVERSE_V2", [x, ctx.constant(np.asarray([axis], np.int32), "axis")], [xr])
        x = xr
    y = ctx.new(f"{out}_arg", reduced, np.int64) if keep or last else ctx.output(out)
    ctx.emit(opcode, [x, ctx.constant(np.asarray([axis], np.int32), "axis")], [y], opts)
    if last:
        flipped = ctx.new(f"{out}_last", reduced, np.int64) if keep else ctx.output(out)
        ctx.emit("SUB", [ctx.constant(np.asarray(shape[axis] - 1, np.int64)), y], [flipped], fb.SubOptionsT())
        y = flipped
    if keep:
        ctx.reshape(y, ctx.shape(out), out=ctx.output(out))


@TFLITE.converts("ArgMax", since=1)
def argmax(node, ctx):
    """ARG_MAX (int64; keepdims via RESHAPE; select_last_index via REVERSE_V2)"""
    _arg(node, ctx, "ARG_MAX", fb.ArgMaxOptionsT)


@TFLITE.converts("ArgMin", since=1)
def argmin(node, ctx):
    """ARG_MIN (int64; keepdims via RESHAPE; select_last_index via REVERSE_V2)"""
    _arg(node, ctx, "ARG_MIN", fb.ArgMinOptionsT)
