"""Shape and data movement with static shapes: Reshape, Flatten, Squeeze, Unsqueeze, Identity (RESHAPE),
Transpose, Concat, Split, Expand, Tile, Shape/Size/ConstantOfShape/Range (constants)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE


def _as_reshape(node, ctx):
    out = node.output[0]
    ctx.reshape(ctx.tensor(node.input[0]), ctx.shape(out), out=ctx.output(out))


def _check_dropout(node, ctx):
    if len(node.output) > 1 and node.output[1]:
        return "Dropout's mask output is not supported (export the model for inference)"
    if ctx.inp(node, 2) and (ctx.const(node.input[2]) is None or bool(ctx.const(node.input[2]))):
        return "Dropout in training mode is not supported (export the model for inference)"
    return None


for _op, _since in (("Reshape", 5), ("Flatten", 1), ("Squeeze", 1), ("Unsqueeze", 1), ("Identity", 1),
                    ("Dropout", 1)):
    _f = lambda node, ctx: _as_reshape(node, ctx)  # noqa: E731
    _f.__doc__ = "RESHAPE to the statically known output shape" + (" (inference)" if _op == "Dropout" else "")
    TFLITE.converts(_op, since=_since, check=_check_dropout if _op == "Dropout" else None)(_f)


@TFLITE.converts("Transpose", since=1)
def transpose(node, ctx):
    """TRANSPOSE (cancelled against neighbours by the layout pass)"""
    rank = ctx.rank(node.input[0])
    perm = ctx.attrs(node).get("perm", list(range(rank))[::-1])
    ctx.transpose(ctx.tensor(node.input[0]), [int(p) for p in perm], out=ctx.output(node.output[0]))


@TFLITE.converts("Concat", since=4)
def concat(node, ctx):
    """CONCATENATION (empty inputs dropped)"""
    rank = ctx.rank(node.output[0])
    axis = int(ctx.attrs(node)["axis"]) % rank
    names = [ctx.tensor(n) for n in node.input if n and 0 not in ctx.shape(n)]
    opts = fb.ConcatenationOptionsT()
    opts.axis = axis
    if len(names) == 1:
        ctx.reshape(names[0], ctx.shape(node.output[0]), out=ctx.output(node.output[0]))
        return
    ctx.emit("CONCATENATION", names, [ctx.output(node.output[0])], opts)


@TFLITE.converts("Split", since=1)
def split(node, ctx):
    """SPLIT_V with the static output sizes"""
    rank = ctx.rank(node.input[0])
    axis = int(ctx.attrs(node).get("axis", 0)) % rank
    sizes = [ctx.shape(o)[axis] for o in node.output]
    opts = fb.SplitVOptionsT()
    opts.numSplits = len(sizes)
    ctx.emit("SPLIT_V", [ctx.tensor(node.input[0]), ctx.constant(np.asarray(sizes, np.int32), "sizes"),
                         ctx.constant(np.asarray(axis, np.int32), "axis")], [ctx.output(o) for o in node.output], opts)


@TFLITE.converts("Expand", since=8)
def expand(node, ctx):
    """BROADCAST_TO the static output shape"""
    out = node.output[0]
    shape = ctx.shape(out)
    x = ctx.tensor(node.input[0])
    if ctx.shape(node.input[0]) == shape:
        ctx.reshape(x, shape, out=ctx.output(out))
        return
    ctx.emit("BROADCAST_TO", [x, ctx.constant(np.asarray(shape, np.int32), "shape")], [ctx.output(out)])


def _check_tile(node, ctx):
    return None if ctx.const(node.input[1]) is not None else "repeats computed at run time are not supported"


@TFLITE.converts("Tile", since=6, check=_check_tile)
def tile(node, ctx):
    """TILE"""
    reps = ctx.const(node.input[1]).astype(np.int32)
    ctx.emit("TILE", [ctx.tensor(node.input[0]), ctx.constant(reps, "multiples")], [ctx.output(node.output[0])])
