"""Gather along any axis (negative indices wrapped)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE


@TFLITE.converts("Gather", since=1)
def gather(node, ctx):
    """GATHER (constant indices wrapped at build time, run-time ones with FLOOR_MOD)"""
    rank = ctx.rank(node.input[0])
    axis = int(ctx.attrs(node).get("axis", 0)) % rank
    dim = ctx.shape(node.input[0])[axis]
    idx = ctx.const(node.input[1])
    if idx is not None:
        ind = ctx.constant(np.where(idx < 0, idx + dim, idx).astype(np.int32), "indices")
    else:
        raw = ctx.tensor(node.input[1])
        dt = ctx.dtype(node.input[1])
        ind = ctx.new(f"{raw}_wrapped", ctx.shape(node.input[1]), dt)
        ctx.emit("FLOOR_MOD", [raw, ctx.constant(np.asarray(dim, dt))], [ind])
    opts = fb.GatherOptionsT()
    opts.axis = axis
    opts.batchDims = 0
    data = ctx.tensor(node.input[0])
    out = node.output[0]
    if idx is not None and idx.ndim == 0:  # scalar index: gather a [1] slice, then drop the axis
        mid_shape = list(ctx.shape(node.input[0]))
        mid_shape[axis] = 1
        mid = ctx.new(f"{out}_g", mid_shape, ctx.dtype(out))
        ctx.emit("GATHER", [data, ctx.constant(np.asarray([int(idx) % dim], np.int32), "indices")], [mid], opts)
        ctx.reshape(mid, ctx.shape(out), out=ctx.output(out))
        return
    ctx.emit("GATHER", [data, ind], [ctx.output(out)], opts)
