"""Gather, GatherElements, GatherND. TFLite kernels reject negative indices, ONNX wraps them: constant
indices are wrapped at build time, run-time ones with FLOOR_MOD by the axis size."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE


def _wrapped(ctx, name: str, dims) -> str:
    """IR indices with negatives wrapped: a constant (int32) when ``name`` is constant, else FLOOR_MOD."""
    idx = ctx.const(name)
    if idx is not None:
        return ctx.constant(np.mod(idx, np.asarray(dims, idx.dtype)).astype(np.int32), "indices")
    raw, dt = ctx.tensor(name), ctx.dtype(name)
    out = ctx.new(f"{raw}_wrapped", ctx.shape(name), dt)
    ctx.emit("FLOOR_MOD", [raw, ctx.constant(np.asarray(dims, dt), "dims")], [out])
    return out


def _gather(ctx, data: str, indices: str, axis: int, out: str) -> str:
    opts = fb.GatherOptionsT()
    opts.axis = axis
    ctx.emit("GATHER", [data, indices], [out], opts)
    return out


@TFLITE.converts("Gather", since=1)
def gather(node, ctx):
    """GATHER (any axis; negative indices wrapped at build time, or with FLOOR_MOD when computed at run time)"""
    rank = ctx.rank(node.input[0])
    axis = int(ctx.attrs(node).get("axis", 0)) % rank
    dim = ctx.shape(node.input[0])[axis]
    idx, out = ctx.const(node.input[1]), node.output[0]
    data = ctx.tensor(node.input[0])
    if idx is not None and idx.ndim == 0:  # a [1] index keeps the rank (layout-agnostic), RESHAPE drops it
        mid_shape = list(ctx.shape(node.input[0]))
        mid_shape[axis] = 1
        mid = _gather(ctx, data, ctx.constant(np.asarray([int(idx) % dim], np.int32), "indices"), axis,
                      ctx.new(f"{out}_g", mid_shape, ctx.dtype(out)))
        ctx.reshape(mid, ctx.shape(out), out=ctx.output(out))
        return
    _gather(ctx, data, _wrapped(ctx, node.input[1], dim), axis, ctx.output(out))


def _flat_strides(shape) -> list[int]:
    return [int(np.prod(shape[k + 1:], dtype=np.int64)) for k in range(len(shape))]


@TFLITE.converts("GatherElements", since=11)
def gather_elements(node, ctx):
    """GATHER on the flattened data at flat offsets (constant, or ADD/MUL of the run-time indices)"""
    data_shape, idx_shape = ctx.shape(node.input[0]), ctx.shape(node.input[1])
    rank = len(data_shape)
    axis = int(ctx.attrs(node).get("axis", 0)) % rank
    strides = _flat_strides(data_shape)
    grids = np.indices(idx_shape, dtype=np.int64)
    base = sum((g * s for k, (g, s) in enumerate(zip(grids, strides)) if k != axis), np.zeros(idx_shape, np.int64))
    flat = ctx.reshape(ctx.tensor(node.input[0]), [int(np.prod(data_shape))])
    idx = ctx.const(node.input[1])
    if idx is not None:
        offsets = ctx.constant((np.mod(idx, data_shape[axis]) * strides[axis] + base).astype(np.int32), "offsets")
    else:
        dt = ctx.dtype(node.input[1])
        wrapped = _wrapped(ctx, node.input[1], data_shape[axis])
        scaled = ctx.new(f"{wrapped}_scaled", idx_shape, dt)
        ctx.emit("MUL", [wrapped, ctx.constant(np.asarray(strides[axis], dt), "stride")], [scaled],
                 fb.MulOptionsT())
        offsets = ctx.new(f"{wrapped}_flat", idx_shape, dt)
        ctx.emit("ADD", [scaled, ctx.constant(base.astype(dt), "base")], [offsets], fb.AddOptionsT())
    _gather(ctx, flat, offsets, 0, ctx.output(node.output[0]))


def _batch_coords(batch_shape, inner_shape) -> np.ndarray:
    """[*batch, *inner, b] coordinates of the batch position of every index tuple."""
    grids = np.indices(tuple(batch_shape), dtype=np.int64)
    grids = grids.reshape(grids.shape + (1,) * len(inner_shape))
    full = np.broadcast_to(grids, (len(batch_shape),) + tuple(batch_shape) + tuple(inner_shape))
    return np.moveaxis(full, 0, -1)


@TFLITE.converts("GatherND", since=11)
def gather_nd(node, ctx):
    """GATHER_ND (batch_dims as prepended batch coordinates; negative indices wrapped)"""
    data_shape, idx_shape = ctx.shape(node.input[0]), ctx.shape(node.input[1])
    b = int(ctx.attrs(node).get("batch_dims", 0))
    m = idx_shape[-1]
    dims = list(data_shape[b:b + m])
    idx = ctx.const(node.input[1])
    coords = _batch_coords(idx_shape[:b], idx_shape[b:-1])
    if idx is not None:
        full = np.concatenate([coords, np.mod(idx, np.asarray(dims, idx.dtype))], axis=-1)
        ind = ctx.constant(full.astype(np.int32), "indices")
    else:
        ind = _wrapped(ctx, node.input[1], dims)
        if b:
            dt = ctx.dtype(node.input[1])
            cat = ctx.new(f"{ind}_batched", idx_shape[:-1] + (b + m,), dt)
            opts = fb.ConcatenationOptionsT()
            opts.axis = len(idx_shape) - 1
            ctx.emit("CONCATENATION", [ctx.constant(coords.astype(dt), "batch"), ind], [cat], opts)
            ind = cat
    ctx.emit("GATHER_ND", [ctx.tensor(node.input[0]), ind], [ctx.output(node.output[0])])
