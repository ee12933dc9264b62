"""Reductions (ReduceMean/Sum/Max/Min/Prod/L2/LogSumExp/SumSquare), ArgMax/ArgMin and TopK."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..registry import COREML

REDUCE = {"ReduceMean": "reduce_mean", "ReduceSum": "reduce_sum", "ReduceMax": "reduce_max",
          "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceL2": "reduce_l2_norm",
          "ReduceL1": "reduce_l1_norm", "ReduceLogSumExp": "reduce_log_sum_exp", "ReduceSumSquare": "reduce_sum_square"}
# the opset from which ``axes`` is an input rather than an attribute
AXES_INPUT = {"ReduceSum": 13}


def _axes(node, ctx):
    a = ctx.attrs(node)
    if ctx.opset >= AXES_INPUT.get(node.op_type, 18):
        axes = ctx.const(ctx.inp(node, 1))
        axes = None if axes is None else [int(v) for v in axes.reshape(-1)]
    else:
        axes = a.get("axes")
    rank = ctx.rank(node.input[0])
    if not axes:
        return None if a.get("noop_with_empty_axes", 0) else list(range(rank))
    return sorted(int(v) % rank for v in axes)


def _reduce_check(node, ctx):
    if ctx.dtype(node.input[0]) == np.bool_:
        return "reduction of a boolean tensor"
    name = ctx.inp(node, 1)
    if ctx.opset >= AXES_INPUT.get(node.op_type, 18) and name and ctx.const(name) is None:
        return "axes computed at run time"
    return None


def _register(onnx_op, mil_op):
    def convert(node, ctx):
        axes = _axes(node, ctx)
        x = ctx.x(node.input[0])
        if axes is None or ctx.rank(node.input[0]) == 0:
            return ctx.set(ctx.out(), mb.identity(x=x, name=ctx.out()))
        keep = bool(ctx.attrs(node).get("keepdims", 1))
        ctx.set(ctx.out(), getattr(mb, mil_op)(x=x, axes=axes, keep_dims=keep, name=ctx.out()))
    convert.__doc__ = mil_op
    COREML.converts(onnx_op, since=1, check=_reduce_check)(convert)


for _onnx, _mil in REDUCE.items():
    _register(_onnx, _mil)


def _register_arg(onnx_op, mil_op):
    def convert(node, ctx):
        a = ctx.attrs(node)
        axis = int(a.get("axis", 0)) % ctx.rank(node.input[0])
        keep = bool(a.get("keepdims", 1))
        x = ctx.x(node.input[0])
        if not a.get("select_last_index", 0):
            return ctx.set(ctx.out(), getattr(mb, mil_op)(x=x, axis=axis, keep_dims=keep, name=ctx.out()))
        # the last of equal extremes: the first one along the reversed axis, counted from the end
        flipped = mb.reverse(x=x, axes=[axis], name=ctx.name("rev"))
        first = getattr(mb, mil_op)(x=flipped, axis=axis, keep_dims=keep, name=ctx.name("arg"))
        last = np.int32(ctx.shape(node.input[0])[axis] - 1)
        ctx.set(ctx.out(), mb.sub(x=last, y=first, name=ctx.out()))
    convert.__doc__ = f"{mil_op} (int32 indices inside the program; select_last_index on the reversed axis)"
    COREML.converts(onnx_op, since=1)(convert)


_register_arg("ArgMax", "reduce_argmax")
_register_arg("ArgMin", "reduce_argmin")


def _topk_check(node, ctx):
    if ctx.opset >= 10 and ctx.const(node.input[1]) is None:
        return "k computed at run time"
    return None


@COREML.converts("TopK", since=1, check=_topk_check)
def topk(node, ctx):
    """topk (values and int32 indices; largest and smallest)"""
    a = ctx.attrs(node)
    k = int(a["k"]) if ctx.opset < 10 else int(ctx.const(node.input[1]).reshape(-1)[0])
    axis = int(a.get("axis", -1)) % ctx.rank(node.input[0])
    values, indices = mb.topk(x=ctx.x(node.input[0]), k=k, axis=axis, ascending=not a.get("largest", 1),
                              name=ctx.name("topk"))
    ctx.set(node.output[0], values)
    if len(node.output) > 1 and node.output[1]:
        ctx.set(node.output[1], indices)
