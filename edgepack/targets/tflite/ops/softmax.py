"""Softmax and LogSoftmax (any axis; opset < 13 coerces to 2-D at ``axis``)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE


def _softmax(node, ctx, opcode: str, legacy: bool):
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    axis = int(ctx.attrs(node).get("axis", 1 if legacy else -1)) % rank
    x, out = ctx.tensor(node.input[0]), node.output[0]
    opts = fb.SoftmaxOptionsT() if opcode == "SOFTMAX" else fb.LogSoftmaxOptionsT()
    if opcode == "SOFTMAX":
        opts.beta = 1.0
    if legacy and axis != rank - 1:  # softmax over the flattened trailing dims
        flat = ctx.reshape(x, (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))
        y = ctx.new(f"{out}_2d", ctx.graph.tensors[flat].shape, ctx.dtype(out))
        ctx.emit(opcode, [flat], [y], opts)
        ctx.reshape(y, shape, out=ctx.output(out))
        return
    if axis == rank - 1:
        ctx.emit(opcode, [x], [ctx.output(out)], opts)
        return
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    xt = ctx.transpose(x, perm)
    yt = ctx.new(f"{out}_t", ctx.graph.tensors[xt].shape, ctx.dtype(out))
    ctx.emit(opcode, [xt], [yt], opts)
    ctx.transpose(yt, perm, out=ctx.output(out))


def _register(op: str, opcode: str, since: int, legacy: bool) -> None:
    def convert(node, ctx):
        _softmax(node, ctx, opcode, legacy=legacy)
    convert.__doc__ = (f"{opcode} over the trailing dims flattened at ``axis`` (opset < 13)" if legacy
                       else f"{opcode} (last axis; other axes are transposed last)")
    TFLITE.converts(op, since=since)(convert)


for _op, _code in (("Softmax", "SOFTMAX"), ("LogSoftmax", "LOG_SOFTMAX")):
    _register(_op, _code, 1, legacy=True)
    _register(_op, _code, 13, legacy=False)
