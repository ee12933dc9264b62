"""Shape ops. Shapes are static after intake, so Reshape, Flatten, Squeeze and Unsqueeze all become one
reshape to the ONNX output shape; Transpose, Concat, Split, Expand, Tile, Identity and Cast map directly."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..context import MIL_DTYPE, narrow
from ..registry import COREML


def _to_output_shape(node, ctx):
    shape = np.array(ctx.shape(node.output[0]), np.int32)
    ctx.set(ctx.out(), mb.reshape(x=ctx.x(node.input[0]), shape=shape, name=ctx.out()))


def _register_reshape(op_type, since):
    def convert(node, ctx):
        _to_output_shape(node, ctx)
    convert.__doc__ = "reshape to the (static) ONNX output shape"
    COREML.converts(op_type, since=since)(convert)


for _op, _since in (("Reshape", 5), ("Flatten", 1), ("Squeeze", 1), ("Unsqueeze", 1)):
    _register_reshape(_op, _since)


@COREML.converts("Transpose", since=1)
def transpose(node, ctx):
    """transpose (reversed axes when perm is absent)"""
    rank = ctx.rank(node.input[0])
    perm = ctx.attrs(node).get("perm", list(range(rank))[::-1])
    ctx.set(ctx.out(), mb.transpose(x=ctx.x(node.input[0]), perm=np.array(perm, np.int32), name=ctx.out()))


@COREML.converts("Concat", since=4)
def concat(node, ctx):
    """concat"""
    values = [ctx.x(n) for n in node.input if n]
    axis = int(ctx.attrs(node)["axis"]) % ctx.rank(node.output[0])
    if len(values) == 1:
        return ctx.set(ctx.out(), mb.identity(x=values[0], name=ctx.out()))
    ctx.set(ctx.out(), mb.concat(values=values, axis=axis, name=ctx.out()))


@COREML.converts("Split", since=2)
def split(node, ctx):
    """split with the sizes of the ONNX outputs"""
    axis = int(ctx.attrs(node).get("axis", 0)) % ctx.rank(node.input[0])
    sizes = [ctx.shape(o)[axis] for o in node.output]
    if len(sizes) == 1:
        return ctx.set(node.output[0], mb.identity(x=ctx.x(node.input[0]), name=node.output[0]))
    parts = mb.split(x=ctx.x(node.input[0]), split_sizes=np.array(sizes, np.int32), axis=axis,
                     name=ctx.name("split"))
    for out, part in zip(node.output, parts):
        if out:
            ctx.set(out, part)


@COREML.converts("Expand", since=8)
def expand(node, ctx):
    """reshape to the output rank, then tile the broadcast axes"""
    out = ctx.shape(node.output[0])
    shape = (1,) * (len(out) - ctx.rank(node.input[0])) + ctx.shape(node.input[0])
    x = ctx.x(node.input[0])
    if tuple(shape) != ctx.shape(node.input[0]):
        x = mb.reshape(x=x, shape=np.array(shape, np.int32), name=ctx.name("rank"))
    reps = [o // s if s == 1 else 1 for o, s in zip(out, shape)]
    if all(r == 1 for r in reps):
        return ctx.set(ctx.out(), mb.identity(x=x, name=ctx.out()))
    ctx.set(ctx.out(), mb.tile(x=x, reps=np.array(reps, np.int32), name=ctx.out()))


@COREML.converts("Tile", since=6, check=lambda n, c: None if c.const(n.input[1]) is not None
                 else "repeats computed at run time")
def tile(node, ctx):
    """tile"""
    reps = ctx.const(node.input[1]).astype(np.int32)
    ctx.set(ctx.out(), mb.tile(x=ctx.x(node.input[0]), reps=reps, name=ctx.out()))


@COREML.converts("Identity", since=1)
def identity(node, ctx):
    """identity"""
    ctx.set(ctx.out(), mb.identity(x=ctx.x(node.input[0]), name=ctx.out()))


@COREML.converts("Cast", since=6)
def cast(node, ctx):
    """cast (int64 -> int32 and float64 -> fp32 inside the program)"""
    to = narrow(ctx.dtype(node.output[0]))
    src = narrow(ctx.dtype(node.input[0]))
    x = ctx.x(node.input[0])
    if to == src:
        return ctx.set(ctx.out(), mb.identity(x=x, name=ctx.out()))
    ctx.set(ctx.out(), mb.cast(x=x, dtype=MIL_DTYPE[to], name=ctx.out()))
