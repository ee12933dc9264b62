"""Slice (any steps, negative too) as STRIDED_SLICE with fully explicit static bounds."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE


def _args(node, ctx):
    a = ctx.attrs(node)
    rank = ctx.rank(node.input[0])
    if ctx.opset < 10:
        starts, ends = a["starts"], a["ends"]
        axes = a.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = ctx.const(node.input[1]), ctx.const(node.input[2])
        axes = ctx.const(ctx.inp(node, 3))
        steps = ctx.const(ctx.inp(node, 4))
        axes = list(range(len(starts))) if axes is None else axes
        steps = [1] * len(starts) if steps is None else steps
    return rank, [int(v) for v in starts], [int(v) for v in ends], [int(v) % rank for v in axes], [int(v) for v in steps]


def _check(node, ctx):
    if ctx.opset >= 10:
        for i in range(1, min(len(node.input), 5)):
            if node.input[i] and ctx.const(node.input[i]) is None:
                return "Slice bounds computed at run time are not supported"
    if 0 in ctx.shape(node.output[0]):
        return "empty slices (a zero-sized output) are not supported"
    return None


@TFLITE.converts("Slice", since=1, check=_check)
def slice_(node, ctx):
    """STRIDED_SLICE (static begin/end/strides; end_mask only for negative steps running to index 0)"""
    rank, starts, ends, axes, steps = _args(node, ctx)
    shape = ctx.shape(node.input[0])
    begin, end, stride = [0] * rank, list(shape), [1] * rank
    end_mask = 0
    for s, e, ax, st in zip(starts, ends, axes, steps):
        idx = range(*slice(s, e, st).indices(shape[ax]))
        if len(idx) == 0:
            raise ctx.fail(f"slice along axis {ax} is empty")
        begin[ax], stride[ax] = idx[0], st
        end[ax] = idx[-1] + st
        if end[ax] < 0:
            end_mask |= 1 << ax
    opts = fb.StridedSliceOptionsT()
    opts.endMask = end_mask
    c = lambda v, n: ctx.constant(np.asarray(v, np.int32), n)  # noqa: E731
    ctx.emit("STRIDED_SLICE", [ctx.tensor(node.input[0]), c(begin, "begin"), c(end, "end"), c(stride, "strides")],
             [ctx.output(node.output[0])], opts)
