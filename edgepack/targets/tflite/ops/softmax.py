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


@TFLITE.converts("Softmax", since=1)
def softmax_legacy(node, ctx):
    """SOFTMAX over the trailing dims flattened at ``axis`` (opset < 13)"""
    _softmax(node, ctx, "SOFTMAX", legacy=True)


@TFLITE.converts("Softmax", since=13)
def softmax(node, ctx):
    """SOFTMAX (last axis; other axes are transposed last)"""
    _softmax(node, ctx, "SOFTMAX", legacy=False)


@TFLITE.converts("LogSoftmax", since=1)
def log_softmax_legacy(node, ctx):
    """LOG_SOFTMAX over the trailing dims flattened at ``axis`` (opset < 13)"""
    _softmax(node, ctx, "LOG_SOFTMAX", legacy=True)


@TFLITE.converts("LogSoftmax", since=13)
def log_softmax(node, ctx):
    """LOG_SOFTMAX (last axis; other axes are transposed last)"""
    _softmax(node, ctx, "LOG_SOFTMAX", legacy=False)
