"""Normalizations: BatchNormalization, InstanceNormalization, LayerNormalization, LRN."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..registry import COREML
from .common import channel_vector


def _all_const(node, ctx, first=1):
    missing = [n for n in node.input[first:] if n and ctx.const(n) is None]
    return f"{', '.join(missing)} must be constant" if missing else None


def _extra_outputs(node):
    return [o for o in node.output[1:] if o]


def _bn_check(node, ctx):
    if ctx.attrs(node).get("training_mode", 0) or _extra_outputs(node):
        return "training mode (running mean / variance outputs)"
    return _all_const(node, ctx)


@COREML.converts("BatchNormalization", since=6, check=_bn_check)
def batch_norm(node, ctx):
    """batch_norm on rank 3-5; folded into mul + add otherwise (inference mode)"""
    eps = float(ctx.attrs(node).get("epsilon", 1e-5))
    gamma, beta, mean, var = (ctx.const(n).astype(np.float32) for n in node.input[1:5])
    rank = ctx.rank(node.input[0])
    if rank in (3, 4, 5):
        return ctx.set(ctx.out(), mb.batch_norm(x=ctx.x(node.input[0]), mean=mean, variance=var, gamma=gamma,
                                                beta=beta, epsilon=np.float32(eps), name=ctx.out()))
    scale = gamma / np.sqrt(var + np.float32(eps))
    shift = beta - mean * scale
    y = mb.mul(x=ctx.x(node.input[0]), y=channel_vector(scale, rank), name=ctx.name("scale"))
    ctx.set(ctx.out(), mb.add(x=y, y=channel_vector(shift, rank), name=ctx.out()))


def _instance_check(node, ctx):
    if ctx.rank(node.input[0]) not in (3, 4):
        return "Core ML's instance_norm takes rank 3 or 4 inputs"
    return _all_const(node, ctx)


@COREML.converts("InstanceNormalization", since=6, check=_instance_check)
def instance_norm(node, ctx):
    """instance_norm"""
    eps = float(ctx.attrs(node).get("epsilon", 1e-5))
    gamma, beta = (ctx.const(n).astype(np.float32) for n in node.input[1:3])
    ctx.set(ctx.out(), mb.instance_norm(x=ctx.x(node.input[0]), gamma=gamma, beta=beta,
                                        epsilon=np.float32(eps), name=ctx.out()))


def _layer_stats(node, ctx, axes, eps):
    """LayerNormalization's optional Mean and InvStdDev outputs (kept dims)."""
    x = ctx.x(node.input[0])
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True, name=node.output[1] or ctx.name("mean"))
    centered = mb.sub(x=x, y=mean, name=ctx.name("centered"))
    var = mb.reduce_mean(x=mb.mul(x=centered, y=centered, name=ctx.name("sq")), axes=axes, keep_dims=True,
                         name=ctx.name("var"))
    if node.output[1]:
        ctx.set(node.output[1], mean)
    if len(node.output) > 2 and node.output[2]:
        ctx.set(node.output[2], mb.rsqrt(x=var, epsilon=eps, name=node.output[2]))


@COREML.converts("LayerNormalization", since=17)
def layer_norm(node, ctx):
    """layer_norm over the trailing axes; a computed scale or bias is applied by mul / add; the Mean and
    InvStdDev outputs by reductions"""
    a = ctx.attrs(node)
    shape = ctx.shape(node.input[0])
    axis = int(a.get("axis", -1)) % len(shape)
    axes = list(range(axis, len(shape)))
    norm_shape = shape[axis:]
    eps = np.float32(a.get("epsilon", 1e-5))
    if _extra_outputs(node):
        _layer_stats(node, ctx, axes, eps)
    scale, bias = ctx.const(node.input[1]), ctx.const(ctx.inp(node, 2))
    kw = {}
    if scale is not None and (ctx.inp(node, 2) is None or bias is not None):
        kw["gamma"] = np.broadcast_to(scale, norm_shape).astype(np.float32)
        if bias is not None:
            kw["beta"] = np.broadcast_to(bias, norm_shape).astype(np.float32)
        return ctx.set(ctx.out(), mb.layer_norm(x=ctx.x(node.input[0]), axes=axes, epsilon=eps, **kw,
                                                name=ctx.out()))
    y = mb.layer_norm(x=ctx.x(node.input[0]), axes=axes, epsilon=eps, name=ctx.name("ln"))
    has_bias = ctx.inp(node, 2) is not None
    y = mb.mul(x=y, y=ctx.x(node.input[1]), name=ctx.name("scale") if has_bias else ctx.out())
    if has_bias:
        y = mb.add(x=y, y=ctx.x(node.input[2]), name=ctx.out())
    ctx.set(ctx.out(), y)


@COREML.converts("LRN", since=1, check=lambda n, c: None if c.rank(n.input[0]) in (3, 4) else "Core ML LRN takes rank 3-4")
def lrn(node, ctx):
    """local_response_norm (same formula: x / (k + alpha/size * sum x^2)^beta across channels)"""
    a = ctx.attrs(node)
    ctx.set(ctx.out(), mb.local_response_norm(
        x=ctx.x(node.input[0]), size=int(a["size"]), alpha=np.float32(a.get("alpha", 1e-4)),
        beta=np.float32(a.get("beta", 0.75)), k=np.float32(a.get("bias", 1.0)), name=ctx.out()))
