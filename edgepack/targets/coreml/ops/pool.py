"""Pooling: MaxPool, AveragePool (with ceil_mode and count_include_pad), GlobalAveragePool, GlobalMaxPool."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..registry import COREML
from .common import pad_type, text


def _pool_check(node, ctx):
    a = ctx.attrs(node)
    if ctx.rank(node.input[0]) not in (3, 4, 5):
        return "Core ML pools 1-D, 2-D and 3-D NC... tensors"
    if ctx.dtype(node.input[0]).kind != "f":
        return "integer pooling"
    if any(d != 1 for d in a.get("dilations", [])):
        return "dilated pooling has no Core ML equivalent"
    if len(node.output) > 1 and node.output[1]:
        return "MaxPool's Indices output has no Core ML equivalent"
    if a.get("ceil_mode") and text(a.get("auto_pad"), "NOTSET") != "NOTSET":
        return "ceil_mode with auto_pad"
    if a.get("ceil_mode") and node.op_type == "AveragePool" and a.get("count_include_pad"):
        return "ceil_mode with count_include_pad (the ceil window's divisor differs in Core ML)"
    return None


def _pool_args(node, ctx) -> dict:
    a = ctx.attrs(node)
    shape = ctx.shape(node.input[0])
    spatial = len(shape) - 2
    k, s = list(a["kernel_shape"]), list(a.get("strides", [1] * spatial))
    kw = dict(kernel_sizes=np.array(k, np.int32), strides=np.array(s, np.int32), **pad_type(a, spatial))
    if a.get("ceil_mode") and kw["pad_type"] == "custom":
        # end pads for which the floor formula yields the ceil output size, without a last window that would
        # start inside the end padding (ONNX's rule; computed here: some shape inference misses that rule)
        p = list(kw["pad"])
        for i in range(spatial):
            size = shape[2 + i] + p[2 * i]
            out = -(-(size + p[2 * i + 1] - k[i]) // s[i]) + 1
            out -= (out - 1) * s[i] >= size
            p[2 * i + 1] = max(0, (out - 1) * s[i] + k[i] - size)
        kw["pad"] = np.array(p, np.int32)
    return kw


@COREML.converts("MaxPool", since=1, check=_pool_check)
def max_pool(node, ctx):
    """max_pool"""
    kw = _pool_args(node, ctx)
    ctx.set(ctx.out(), mb.max_pool(x=ctx.x(node.input[0]), **kw, name=ctx.out()))


@COREML.converts("AveragePool", since=1, check=_pool_check)
def avg_pool(node, ctx):
    """avg_pool (exclude_padding_from_average = not count_include_pad)"""
    kw = _pool_args(node, ctx)
    include = bool(ctx.attrs(node).get("count_include_pad", 0))
    ctx.set(ctx.out(), mb.avg_pool(x=ctx.x(node.input[0]), exclude_padding_from_average=not include, **kw,
                                   name=ctx.out()))


def _global(node, ctx, op):
    axes = list(range(2, ctx.rank(node.input[0])))
    ctx.set(ctx.out(), getattr(mb, op)(x=ctx.x(node.input[0]), axes=axes, keep_dims=True, name=ctx.out()))


@COREML.converts("GlobalAveragePool", since=1)
def global_avg_pool(node, ctx):
    """reduce_mean over the spatial axes"""
    _global(node, ctx, "reduce_mean")


@COREML.converts("GlobalMaxPool", since=1)
def global_max_pool(node, ctx):
    """reduce_max over the spatial axes"""
    _global(node, ctx, "reduce_max")


