"""TopK as TOPK_V2 (last axis; other axes are moved last by TRANSPOSE). ArgMax/ArgMin live in reduce.py."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import NUMERIC, dtype_check


def _flip(ctx, x: str, out: str | None = None) -> str:
    """An order-reversing bijection: -x for floats, -1 - x for integers (no overflow at the minimum)."""
    t = ctx.graph.tensors[x]
    out = out or ctx.new(f"{x}_flip", t.shape, t.dtype)
    if t.dtype.kind == "f":
        ctx.emit("NEG", [x], [out])
    else:
        ctx.emit("SUB", [ctx.constant(np.asarray(-1, t.dtype), "minus_one"), x], [out], fb.SubOptionsT())
    return out


def _data_only(check):
    class _View:  # exposes only the data input to dtype_check (k is int64)
        def __init__(self, node):
            self.input = node.input[:1]
    return lambda node, ctx: check(_View(node), ctx)


@TFLITE.converts("TopK", since=1, check=_data_only(dtype_check(NUMERIC, what="inputs (data)")))
def top_k(node, ctx):
    """TOPK_V2 on the last axis (TRANSPOSE for others; largest=0 via NEG; always sorted; ties: lower index first)"""
    a = ctx.attrs(node)
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    axis = int(a.get("axis", -1)) % rank
    k = ctx.shape(node.output[0])[axis]
    largest = bool(a.get("largest", 1))
    perm = [d for d in range(rank) if d != axis] + [axis]
    x = ctx.tensor(node.input[0])
    if axis != rank - 1:
        x = ctx.transpose(x, perm)
    if not largest:
        x = _flip(ctx, x)
    kshape = tuple(ctx.graph.tensors[x].shape[:-1]) + (k,)
    last = axis == rank - 1
    land = lambda name, dt: ctx.output(name) if last else ctx.new(f"{name}_last", kshape, dt)  # noqa: E731
    values = land(node.output[0], ctx.dtype(node.input[0]))
    raw = values if largest else ctx.new(f"{node.output[0]}_topk", kshape, ctx.dtype(node.input[0]))
    index = ctx.new(f"{node.output[1]}_topk", kshape, np.int32)
    ctx.emit("TOPK_V2", [x, ctx.constant(np.asarray(k, np.int32), "k")], [raw, index], fb.TopKV2OptionsT())
    if not largest:
        _flip(ctx, raw, values)
    index = ctx.cast(index, np.int64, out=land(node.output[1], np.int64))
    if not last:
        inv = [int(p) for p in np.argsort(perm)]
        ctx.transpose(values, inv, out=ctx.output(node.output[0]))
        ctx.transpose(index, inv, out=ctx.output(node.output[1]))
