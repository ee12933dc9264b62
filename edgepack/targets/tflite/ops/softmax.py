"""Softmax, LogSoftmax and Hardmax (any axis; opset < 13 coerces the input to 2-D at ``axis``)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import F32, dtype_check


def _flat_2d(node, ctx, legacy: bool):
    """(IR input, axis, 2-D shape or None): opset < 13 works on the input flattened to 2-D at ``axis``."""
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    axis = int(ctx.attrs(node).get("axis", 1 if legacy else -1)) % rank
    x = ctx.tensor(node.input[0])
    if legacy and axis != rank - 1:
        flat = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
        return ctx.reshape(x, flat), 1, flat
    return x, axis, None


def _last_axis(ctx, x: str, axis: int, out: str, body) -> None:
    """Run ``body(x_last, y_last)`` with ``axis`` moved last (TFLite's softmax axis), writing ``out``."""
    rank = len(ctx.graph.tensors[x].shape)
    if axis == rank - 1:
        body(x, out)
        return
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    xt = ctx.transpose(x, perm)
    yt = ctx.new(f"{out}_t", ctx.graph.tensors[xt].shape, ctx.graph.tensors[out].dtype)
    body(xt, yt)
    ctx.transpose(yt, perm, out=out)


def _softmax(node, ctx, opcode: str, legacy: bool):
    out = node.output[0]
    x, axis, flat = _flat_2d(node, ctx, legacy)
    opts = fb.SoftmaxOptionsT() if opcode == "SOFTMAX" else fb.LogSoftmaxOptionsT()
    if opcode == "SOFTMAX":
        opts.beta = 1.0
    y = ctx.new(f"{out}_2d", flat, ctx.dtype(out)) if flat else ctx.output(out)
    _last_axis(ctx, x, axis, y, lambda a, b: ctx.emit(opcode, [a], [b], opts))
    if flat:
        ctx.reshape(y, ctx.shape(out), out=ctx.output(out))


def _hardmax(node, ctx, legacy: bool):
    out = node.output[0]
    x, axis, flat = _flat_2d(node, ctx, legacy)
    shape = ctx.graph.tensors[x].shape
    y = ctx.new(f"{out}_2d", flat, np.float32) if flat else ctx.output(out)
    arg_opts, hot_opts = fb.ArgMaxOptionsT(), fb.OneHotOptionsT()
    arg_opts.outputType = fb.TensorType.INT32
    hot_opts.axis = axis
    idx = ctx.new(f"{out}_argmax", shape[:axis] + shape[axis + 1:], np.int32)
    ctx.emit("ARG_MAX", [x, ctx.constant(np.asarray([axis], np.int32), "axis")], [idx], arg_opts)  # first maximum
    on, off = ctx.constant(np.asarray(1.0, np.float32), "on"), ctx.constant(np.asarray(0.0, np.float32), "off")
    ctx.emit("ONE_HOT", [idx, ctx.constant(np.asarray(shape[axis], np.int32), "depth"), on, off], [y], hot_opts)
    if flat:
        ctx.reshape(y, ctx.shape(out), out=ctx.output(out))


def _register(op: str, since: int, legacy: bool) -> None:
    opcode = {"Softmax": "SOFTMAX", "LogSoftmax": "LOG_SOFTMAX", "Hardmax": "ARG_MAX + ONE_HOT"}[op]

    def convert(node, ctx):
        if op == "Hardmax":
            _hardmax(node, ctx, legacy)
        else:
            _softmax(node, ctx, opcode, legacy)
    convert.__doc__ = (f"{opcode} over the trailing dims flattened at ``axis`` (opset < 13)" if legacy
                       else f"{opcode} (last axis; other axes are transposed last)" if op != "Hardmax"
                       else f"{opcode} along ``axis`` (first maximum wins, as in ONNX)")
    TFLITE.converts(op, since=since, check=dtype_check(F32))(convert)


for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    _register(_op, 1, legacy=True)
    _register(_op, 13, legacy=False)
