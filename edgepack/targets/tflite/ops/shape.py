"""Shape and data movement with static shapes: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout
(RESHAPE), Transpose, Concat, Split, Expand, Tile, DepthToSpace/SpaceToDepth (NHWC kernels), and
Constant/Shape/Size/ConstantOfShape/Range (constants: every shape is static)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb
from onnx import numpy_helper

from ..registry import TFLITE
from .common import dtype_check
from .slice import declared_dims, emit_slice


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
    """SPLIT_V with the static output sizes (bool: one SLICE per output, SPLIT_V has no bool kernel)"""
    rank = ctx.rank(node.input[0])
    axis = int(ctx.attrs(node).get("axis", 0)) % rank
    sizes = [ctx.shape(o)[axis] for o in node.output]
    if ctx.dtype(node.input[0]) == np.bool_:
        start = 0
        for o, n in zip(node.output, sizes):
            begin, end = [0] * rank, list(ctx.shape(node.input[0]))
            begin[axis], end[axis] = start, start + n
            emit_slice(ctx, ctx.tensor(node.input[0]), begin, end, [1] * rank, ctx.output(o))
            start += n
        return
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
    if 0 in declared_dims(ctx, node.input[0]) and ctx.const(node.input[1]) is None:
        return "Tile of an empty tensor with repeats computed at run time is not supported"
    return None


@TFLITE.converts("Tile", since=6, check=_check_tile)
def tile(node, ctx):
    """TILE (multiples from the static shapes, so run-time repeats work too)"""
    src, out = ctx.shape(node.input[0]), ctx.shape(node.output[0])
    reps = ctx.const(node.input[1])
    reps = [o // i if i else int(r) for i, o, r in zip(src, out, reps if reps is not None else src)]
    ctx.emit("TILE", [ctx.tensor(node.input[0]), ctx.constant(np.asarray(reps, np.int32), "multiples")],
             [ctx.output(node.output[0])])


# --- values fixed by the static shapes: the converters emit constants (intake usually folds these) ---

def _constant_output(ctx, name: str, value: np.ndarray) -> None:
    ctx.graph.tensors[ctx.output(name, shape=value.shape, dtype=value.dtype)].data = np.ascontiguousarray(value)


def _nonempty(node, ctx):
    if 0 in declared_dims(ctx, node.output[0]):
        return "an empty constant (a zero-sized output) cannot be stored in a TFLite model"
    return None


def _check_range(node, ctx):
    if None in declared_dims(ctx, node.output[0]):
        return "Range whose length depends on run-time values is not supported (shapes must be static)"
    return _nonempty(node, ctx)


@TFLITE.converts("Shape", since=1, check=_nonempty)
def shape_(node, ctx):
    """constant (static shapes; start/end clamped as ONNX does)"""
    a = ctx.attrs(node)
    dims = ctx.shape(node.input[0])
    start, end = int(a.get("start", 0)), int(a.get("end", len(dims)))
    _constant_output(ctx, node.output[0], np.asarray(dims[start:end], np.int64))


@TFLITE.converts("Size", since=1)
def size(node, ctx):
    """constant (static shapes)"""
    _constant_output(ctx, node.output[0], np.asarray(int(np.prod(ctx.shape(node.input[0]))), np.int64))


def _check_constant(node, ctx):
    kind = next((a.name for a in node.attribute), "")
    if kind in ("sparse_value", "value_string", "value_strings"):
        return f"Constant with {kind} has no TFLite equivalent here"
    return _nonempty(node, ctx)


@TFLITE.converts("Constant", since=1, check=_check_constant)
def constant(node, ctx):
    """constant (intake folds these into initializers; a surviving one is stored as it is)"""
    a = next(iter(ctx.attrs(node).items()))
    value = numpy_helper.to_array(a[1]) if a[0] == "value" else np.asarray(
        a[1], np.float32 if a[0].startswith("value_float") else np.int64)
    _constant_output(ctx, node.output[0], value)


@TFLITE.converts("ConstantOfShape", since=9, check=_nonempty)
def constant_of_shape(node, ctx):
    """constant (of the static output shape)"""
    value = ctx.attrs(node).get("value")
    fill = np.zeros(1, np.float32) if value is None else numpy_helper.to_array(value).ravel()
    _constant_output(ctx, node.output[0], np.full(ctx.shape(node.output[0]), fill[0], fill.dtype))


@TFLITE.converts("Range", since=11, check=_check_range)
def range_(node, ctx):
    """constant; with run-time start/delta: start + delta * iota (MUL + ADD; the length is static)"""
    n = ctx.shape(node.output[0])[0]
    dt = ctx.dtype(node.output[0])
    start, delta = ctx.const(node.input[0]), ctx.const(node.input[2])
    iota = np.arange(n, dtype=dt)
    if start is not None and delta is not None:
        _constant_output(ctx, node.output[0], (start.ravel()[0] + iota * delta.ravel()[0]).astype(dt))
        return
    steps = ctx.new(f"{node.output[0]}_steps", (n,), dt)
    ctx.emit("MUL", [ctx.constant(iota, "iota"), ctx.tensor(node.input[2])], [steps], fb.MulOptionsT())
    ctx.emit("ADD", [steps, ctx.tensor(node.input[0])], [ctx.output(node.output[0])], fb.AddOptionsT())


# --- NHWC-only kernels (layout-transforming) ---

_BLOCK_TYPES = dtype_check({np.dtype(t) for t in (np.float32, np.int8, np.uint8, np.int32, np.int64)})


def _blocksize_check(node, ctx):
    if ctx.rank(node.input[0]) != 4:
        return f"{node.op_type} needs a 4-D NCHW input"
    return _BLOCK_TYPES(node, ctx)


@TFLITE.converts("DepthToSpace", since=1, check=_blocksize_check)
def depth_to_space(node, ctx):
    """DEPTH_TO_SPACE on NHWC (DCR natively; CRD through a constant channel GATHER first)"""
    a = ctx.attrs(node)
    b = int(a["blocksize"])
    mode = a.get("mode", b"DCR")
    xn = ctx.to_nhwc(ctx.tensor(node.input[0]))
    c = ctx.shape(node.input[0])[1]
    if (mode.decode() if isinstance(mode, bytes) else mode) == "CRD":  # DCR channel j holds CRD channel crd[j]
        crd = np.arange(c).reshape(c // (b * b), b * b).T.ravel()
        gopts = fb.GatherOptionsT()
        gopts.axis = 3
        perm = ctx.new(f"{xn}_dcr", ctx.graph.tensors[xn].shape, ctx.dtype(node.input[0]))
        ctx.emit("GATHER", [xn, ctx.constant(crd.astype(np.int32), "channels")], [perm], gopts)
        xn = perm
    opts = fb.DepthToSpaceOptionsT()
    opts.blockSize = b
    yn = ctx.new(f"{node.output[0]}_nhwc", ctx.nhwc_shape(node.output[0]), ctx.dtype(node.output[0]))
    ctx.emit("DEPTH_TO_SPACE", [xn], [yn], opts)
    ctx.from_nhwc(yn, ctx.output(node.output[0]))


@TFLITE.converts("SpaceToDepth", since=1, check=_blocksize_check)
def space_to_depth(node, ctx):
    """SPACE_TO_DEPTH on NHWC"""
    opts = fb.SpaceToDepthOptionsT()
    opts.blockSize = int(ctx.attrs(node)["blocksize"])
    xn = ctx.to_nhwc(ctx.tensor(node.input[0]))
    yn = ctx.new(f"{node.output[0]}_nhwc", ctx.nhwc_shape(node.output[0]), ctx.dtype(node.output[0]))
    ctx.emit("SPACE_TO_DEPTH", [xn], [yn], opts)
    ctx.from_nhwc(yn, ctx.output(node.output[0]))
