"""Slice (any steps, negative too) as SLICE / STRIDED_SLICE with fully explicit static bounds (no masks)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE


def slice_args(node, ctx) -> list[tuple[int, int, int, int]]:
    """ONNX Slice arguments as (axis, start, end, step) per sliced axis (axis non-negative, unclamped)."""
    a = ctx.attrs(node)
    rank = ctx.rank(node.input[0])
    if ctx.opset < 10:
        starts, ends = a["starts"], a["ends"]
        axes, steps = a.get("axes"), None
    else:
        starts, ends = ctx.const(node.input[1]).tolist(), ctx.const(node.input[2]).tolist()
        axes, steps = ctx.const(ctx.inp(node, 3)), ctx.const(ctx.inp(node, 4))
    axes = list(range(len(starts))) if axes is None else [int(v) % rank for v in np.ravel(axes)]
    steps = [1] * len(starts) if steps is None else [int(v) for v in np.ravel(steps)]
    return [(ax, int(s), int(e), st) for ax, s, e, st in zip(axes, starts, ends, steps)]


def static_bounds(shape, args) -> tuple[list[int], list[int], list[int]]:
    """Explicit STRIDED_SLICE begin/end/strides (clamped like ONNX; end -dim-1 means "through index 0")."""
    rank = len(shape)
    begin, end, stride = [0] * rank, list(shape), [1] * rank
    for ax, s, e, st in args:
        idx = range(*slice(s, e, st).indices(shape[ax]))
        begin[ax], stride[ax] = idx[0], st
        last = idx[-1] + st
        end[ax] = last if last >= 0 else -shape[ax] - 1  # negative steps running past index 0
    return begin, end, stride


def declared_dims(ctx, name: str) -> list[int | None]:
    """A tensor's dims as the model states them, None where unknown (the early preflight runs before intake
    has completed every shape, and ``ctx.shape`` reads unknown dims as 0)."""
    g = ctx.model.graph
    for v in list(g.value_info) + list(g.output) + list(g.input):
        if v.name == name:
            return [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
    return [None]


def _check(node, ctx):
    if ctx.opset >= 10:
        for i in range(1, min(len(node.input), 5)):
            if node.input[i] and ctx.const(node.input[i]) is None:
                return "Slice bounds computed at run time are not supported (fix them at export)"
    if 0 in declared_dims(ctx, node.output[0]):
        return "empty slices (a zero-sized output) are not supported"
    if any(st == 0 for *_, st in slice_args(node, ctx)):
        return "Slice steps must not be 0"
    return None


def emit_slice(ctx, x: str, begin, end, stride, out: str) -> str:
    """SLICE when every stride is 1, else STRIDED_SLICE; all bounds explicit int32 constants."""
    c = lambda v, n: ctx.constant(np.asarray(v, np.int32), n)  # noqa: E731
    if all(s == 1 for s in stride):
        size = [e - b for b, e in zip(begin, end)]
        ctx.emit("SLICE", [x, c(begin, "begin"), c(size, "size")], [out], fb.SliceOptionsT())
    else:
        ctx.emit("STRIDED_SLICE", [x, c(begin, "begin"), c(end, "end"), c(stride, "strides")], [out],
                 fb.StridedSliceOptionsT())
    return out


@TFLITE.converts("Slice", since=1, check=_check)
def slice_(node, ctx):
    """SLICE (unit steps) / STRIDED_SLICE (other steps, negative too); static bounds clamped at build time"""
    begin, end, stride = static_bounds(ctx.shape(node.input[0]), slice_args(node, ctx))
    emit_slice(ctx, ctx.tensor(node.input[0]), begin, end, stride, ctx.output(node.output[0]))
