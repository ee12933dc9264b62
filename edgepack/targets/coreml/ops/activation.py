"""Activations and softmax: LeakyRelu, PRelu, Clip, HardSigmoid, HardSwish, Gelu, Softmax, LogSoftmax
(Relu, Sigmoid, Tanh and Erf are plain unary ops in ``elementwise.py``)."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..registry import COREML


@COREML.converts("LeakyRelu", since=6)
def leaky_relu(node, ctx):
    """leaky_relu"""
    alpha = float(ctx.attrs(node).get("alpha", 0.01))
    ctx.set(ctx.out(), mb.leaky_relu(x=ctx.x(node.input[0]), alpha=np.float32(alpha), name=ctx.out()))


@COREML.converts("PRelu", since=7)
def prelu(node, ctx):
    """prelu for a per-channel constant slope; relu(x) + slope * min(x, 0) otherwise"""
    x, slope = node.input[0], ctx.const(node.input[1])
    shape = ctx.shape(x)
    if slope is not None and len(shape) >= 3 and slope.size == shape[1] and \
            slope.shape in {(shape[1],)} | {(shape[1],) + (1,) * k for k in range(1, len(shape) - 1)}:
        if len(shape) in (3, 4, 5) and slope.size > 1:
            return ctx.set(ctx.out(), mb.prelu(x=ctx.x(x), alpha=slope.reshape(-1).astype(np.float32),
                                               name=ctx.out()))
    neg = mb.minimum(x=ctx.x(x), y=np.float32(0), name=ctx.name("neg"))
    scaled = mb.mul(x=neg, y=ctx.x(node.input[1]), name=ctx.name("scaled"))
    pos = mb.relu(x=ctx.x(x), name=ctx.name("pos"))
    ctx.set(ctx.out(), mb.add(x=pos, y=scaled, name=ctx.out()))


def _bound(node, ctx, i, key):
    """(constant value or None, run-time MIL value or None) of a Clip bound."""
    if ctx.opset < 11:
        return ctx.attrs(node).get(key), None
    name = ctx.inp(node, i)
    if name is None:
        return None, None
    value = ctx.const(name)
    return (value, None) if value is not None else (None, ctx.x(name))


@COREML.converts("Clip", since=6)
def clip(node, ctx):
    """relu6 / clip with constant bounds; maximum / minimum with one bound or bounds computed at run time"""
    (lo, lo_var), (hi, hi_var) = _bound(node, ctx, 1, "min"), _bound(node, ctx, 2, "max")
    x, dt = ctx.x(node.input[0]), np.float32 if ctx.dtype(node.input[0]).kind == "f" else np.int32
    if lo is not None and hi is not None and dt is np.float32:
        if float(lo) == 0.0 and float(hi) == 6.0:
            return ctx.set(ctx.out(), mb.relu6(x=x, name=ctx.out()))
        return ctx.set(ctx.out(), mb.clip(x=x, alpha=dt(lo), beta=dt(hi), name=ctx.out()))
    lower = dt(lo) if lo is not None else lo_var
    upper = dt(hi) if hi is not None else hi_var
    if lower is not None:
        x = mb.maximum(x=x, y=lower, name=ctx.out() if upper is None else ctx.name("lo"))
    if upper is not None:
        x = mb.minimum(x=x, y=upper, name=ctx.out())
    if lower is None and upper is None:
        x = mb.identity(x=x, name=ctx.out())
    ctx.set(ctx.out(), x)


@COREML.converts("HardSigmoid", since=6)
def hard_sigmoid(node, ctx):
    """sigmoid_hard"""
    a = ctx.attrs(node)
    ctx.set(ctx.out(), mb.sigmoid_hard(x=ctx.x(node.input[0]), alpha=np.float32(a.get("alpha", 0.2)),
                                       beta=np.float32(a.get("beta", 0.5)), name=ctx.out()))


@COREML.converts("HardSwish", since=14)
def hard_swish(node, ctx):
    """x * sigmoid_hard(x, 1/6, 1/2)"""
    x = ctx.x(node.input[0])
    gate = mb.sigmoid_hard(x=x, alpha=np.float32(1 / 6), beta=np.float32(0.5), name=ctx.name("gate"))
    ctx.set(ctx.out(), mb.mul(x=x, y=gate, name=ctx.out()))


@COREML.converts("Gelu", since=20)
def gelu(node, ctx):
    """gelu (EXACT, or TANH_APPROXIMATION for approximate='tanh')"""
    mode = "TANH_APPROXIMATION" if ctx.attrs(node).get("approximate", b"none") in (b"tanh", "tanh") else "EXACT"
    ctx.set(ctx.out(), mb.gelu(x=ctx.x(node.input[0]), mode=mode, name=ctx.out()))


def _softmax_axes(node, ctx):
    """(axis, flatten): before opset 13 softmax covers every axis from ``axis`` on (a 2-D view)."""
    rank = ctx.rank(node.input[0])
    axis = ctx.attrs(node).get("axis", -1 if ctx.opset >= 13 else 1)
    axis = axis + rank if axis < 0 else axis
    return axis, ctx.opset < 13 and axis != rank - 1


def _softmax_like(node, ctx, fn):
    x = ctx.x(node.input[0])
    axis, flat = _softmax_axes(node, ctx)
    shape = ctx.shape(node.input[0])
    if not flat:
        return ctx.set(ctx.out(), fn(x, axis, ctx.out()))
    rows = int(np.prod(shape[:axis], dtype=np.int64))
    x2 = mb.reshape(x=x, shape=np.array([rows, -1], np.int32), name=ctx.name("flat"))
    y2 = fn(x2, 1, ctx.name("soft"))
    ctx.set(ctx.out(), mb.reshape(x=y2, shape=np.array(shape, np.int32), name=ctx.out()))


@COREML.converts("Softmax", since=1)
def softmax(node, ctx):
    """softmax (opset < 13: on the 2-D view the axis defines)"""
    _softmax_like(node, ctx, lambda x, axis, name: mb.softmax(x=x, axis=axis, name=name))


def _log_softmax(x, axis, name):
    lse = mb.reduce_log_sum_exp(x=x, axes=[axis], keep_dims=True, name=name + "__lse")
    return mb.sub(x=x, y=lse, name=name)


@COREML.converts("LogSoftmax", since=1)
def log_softmax(node, ctx):
    """x - reduce_log_sum_exp(x) (stable; no log of a rounded softmax)"""
    _softmax_like(node, ctx, _log_softmax)
