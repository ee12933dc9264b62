"""Activations: Relu, LeakyRelu, PRelu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh, Gelu, Elu, Selu, Celu,
Softplus, Softsign, ThresholdedRelu, Mish.

Everything is composed from layout-agnostic elementwise ops, so a transpose passes through them.
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import F32, dtype_check
from .elementwise import INTEGERS, cast_value, narrow, op, scalar, wide_output, widen

F32_ONLY = dtype_check(F32)


def _simple(opcode: str, options=None):
    def convert(node, ctx):
        ctx.emit(opcode, [ctx.tensor(node.input[0])], [ctx.output(node.output[0])], options() if options else None)
    convert.__doc__ = opcode
    return convert


for _op, _code, _since in (("Sigmoid", "LOGISTIC", 6), ("Tanh", "TANH", 6), ("HardSwish", "HARD_SWISH", 14)):
    TFLITE.converts(_op, since=_since, check=F32_ONLY)(_simple(_code))


def _io(node, ctx):
    """(x, onnx output name, shape, dtype) of a unary node."""
    return ctx.tensor(node.input[0]), node.output[0], ctx.shape(node.input[0]), ctx.dtype(node.input[0])


@TFLITE.converts("Relu", since=6, check=dtype_check(INTEGERS))
def relu(node, ctx):
    """RELU (float32); MAXIMUM(x, 0) for integers (opset 14)"""
    if ctx.dtype(node.input[0]) == np.float32:
        ctx.emit("RELU", [ctx.tensor(node.input[0])], [ctx.output(node.output[0])])
        return
    y = wide_output(ctx, node.output[0])
    ctx.emit("MAXIMUM", [widen(ctx, node.input[0]), scalar(ctx, 0, ctx.graph.tensors[y].dtype)], [y])
    narrow(ctx, y, node.output[0])


@TFLITE.converts("LeakyRelu", since=6, check=F32_ONLY)
def leaky_relu(node, ctx):
    """LEAKY_RELU"""
    opts = fb.LeakyReluOptionsT()
    opts.alpha = float(ctx.attrs(node).get("alpha", 0.01))
    ctx.emit("LEAKY_RELU", [ctx.tensor(node.input[0])], [ctx.output(node.output[0])], opts)


@TFLITE.converts("PRelu", since=7, check=dtype_check(INTEGERS))
def prelu(node, ctx):
    """PRELU (float32, slope broadcast to x); integers as SELECT_V2(x < 0, x * slope, x)"""
    if ctx.dtype(node.input[0]) == np.float32:
        slope = ctx.const(node.input[1])
        alpha = ctx.constant(slope, "slope") if slope is not None else ctx.tensor(node.input[1])
        ctx.emit("PRELU", [ctx.tensor(node.input[0]), alpha], [ctx.output(node.output[0])])
        return
    x, s, out = widen(ctx, node.input[0]), widen(ctx, node.input[1]), node.output[0]
    y = wide_output(ctx, out)
    shape, dt = ctx.shape(out), ctx.graph.tensors[y].dtype
    neg = op(ctx, "LESS", [x, scalar(ctx, 0, dt)], shape, np.bool_, hint=out)
    ctx.emit("SELECT_V2", [neg, op(ctx, "MUL", [x, s], shape, dt, fb.MulOptionsT(), out), x], [y])
    narrow(ctx, y, out)


def _clip(node, ctx, lo, hi):
    """min(max(x, lo), hi); lo/hi are floats (+-inf when absent) or IR tensors computed at run time."""
    x, out, shape, dt = _io(node, ctx)
    runtime = isinstance(lo, str) or isinstance(hi, str)
    fused = None if runtime else {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, np.inf): "RELU",
                                  (0.0, 1.0): "RELU_0_TO_1"}.get((lo, hi))
    if fused and dt == np.float32:
        ctx.emit(fused, [x], [ctx.output(out)])
        return
    x = widen(ctx, node.input[0])
    y = wide_output(ctx, out)
    wdt = ctx.graph.tensors[y].dtype
    bound = lambda v: cast_value(ctx, v, wdt) if isinstance(v, str) else scalar(ctx, v, wdt)  # noqa: E731
    has_lo, has_hi = isinstance(lo, str) or lo != -np.inf, isinstance(hi, str) or hi != np.inf
    if has_lo:
        x = op(ctx, "MAXIMUM", [x, bound(lo)], shape, wdt, hint=out, out=None if has_hi else y)
    if has_hi:
        op(ctx, "MINIMUM", [x, bound(hi)], shape, wdt, hint=out, out=y)
    if not has_lo and not has_hi:
        ctx.reshape(x, shape, out=y)
    narrow(ctx, y, out)


@TFLITE.converts("Clip", since=6, check=dtype_check(INTEGERS))
def clip_6(node, ctx):
    """RELU / RELU6 / RELU_N1_TO_1 / RELU_0_TO_1 when the min/max attributes match, else MAXIMUM + MINIMUM"""
    a = ctx.attrs(node)
    _clip(node, ctx, float(a.get("min", -np.inf)), float(a.get("max", np.inf)))


@TFLITE.converts("Clip", since=11, check=dtype_check(INTEGERS))
def clip_11(node, ctx):
    """RELU / RELU6 / RELU_N1_TO_1 / RELU_0_TO_1 for matching constant bounds, else MAXIMUM + MINIMUM (any)"""
    bounds = []
    for i, default in ((1, -np.inf), (2, np.inf)):
        name = ctx.inp(node, i)
        value = ctx.const(name)
        bounds.append(default if name is None else float(value) if value is not None else ctx.tensor(name))
    _clip(node, ctx, *bounds)


@TFLITE.converts("HardSigmoid", since=6, check=F32_ONLY)
def hard_sigmoid(node, ctx):
    """MUL + ADD + RELU_0_TO_1: max(0, min(1, alpha*x + beta))"""
    a = ctx.attrs(node)
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    x, out, shape, dt = _io(node, ctx)
    m = op(ctx, "MUL", [x, scalar(ctx, alpha, dt)], shape, dt, fb.MulOptionsT(), out)
    s = op(ctx, "ADD", [m, scalar(ctx, beta, dt)], shape, dt, fb.AddOptionsT(), out)
    ctx.emit("RELU_0_TO_1", [s], [ctx.output(out)])


@TFLITE.converts("Gelu", since=20, check=F32_ONLY)
def gelu(node, ctx):
    """GELU (approximate none or tanh)"""
    opts = fb.GeluOptionsT()
    approx = ctx.attrs(node).get("approximate", b"none")
    opts.approximate = (approx.decode() if isinstance(approx, bytes) else approx) == "tanh"
    ctx.emit("GELU", [ctx.tensor(node.input[0])], [ctx.output(node.output[0])], opts)


def _scaled_elu(ctx, x, shape, dt, alpha: float, gamma: float, out: str) -> None:
    """gamma * (x if x > 0 else alpha * (exp(x) - 1)) from ELU: a plain ELU when alpha = gamma = 1."""
    if alpha == 1.0 and gamma == 1.0:
        ctx.emit("ELU", [x], [out])
        return
    e = op(ctx, "ELU", [x], shape, dt, hint=out)
    neg = op(ctx, "MUL", [e, scalar(ctx, alpha * gamma, dt)], shape, dt, fb.MulOptionsT(), out)
    pos = x if gamma == 1.0 else op(ctx, "MUL", [x, scalar(ctx, gamma, dt)], shape, dt, fb.MulOptionsT(), out)
    gt = op(ctx, "GREATER", [x, scalar(ctx, 0, dt)], shape, np.bool_, hint=out)
    ctx.emit("SELECT_V2", [gt, pos, neg], [out])


@TFLITE.converts("Elu", since=6, check=F32_ONLY)
def elu(node, ctx):
    """ELU (alpha 1), else x > 0 ? x : alpha * ELU(x) via SELECT_V2"""
    x, out, shape, dt = _io(node, ctx)
    _scaled_elu(ctx, x, shape, dt, float(ctx.attrs(node).get("alpha", 1.0)), 1.0, ctx.output(out))


@TFLITE.converts("Selu", since=6, check=F32_ONLY)
def selu(node, ctx):
    """ELU, MUL and SELECT_V2: gamma * (x > 0 ? x : alpha * (exp(x) - 1))"""
    a = ctx.attrs(node)
    x, out, shape, dt = _io(node, ctx)
    _scaled_elu(ctx, x, shape, dt, float(a.get("alpha", 1.67326319217681884765625)),
                float(a.get("gamma", 1.05070102214813232421875)), ctx.output(out))


@TFLITE.converts("Celu", since=12, check=F32_ONLY)
def celu(node, ctx):
    """alpha * ELU(x / alpha) (MUL, ELU, MUL)"""
    alpha = float(ctx.attrs(node).get("alpha", 1.0))
    x, out, shape, dt = _io(node, ctx)
    if alpha == 1.0:
        ctx.emit("ELU", [x], [ctx.output(out)])
        return
    scaled = op(ctx, "MUL", [x, scalar(ctx, 1.0 / alpha, dt)], shape, dt, fb.MulOptionsT(), out)
    e = op(ctx, "ELU", [scaled], shape, dt, hint=out)
    ctx.emit("MUL", [e, scalar(ctx, alpha, dt)], [ctx.output(out)], fb.MulOptionsT())


def _softplus(ctx, x, shape, dt, hint: str, out: str | None = None) -> str:
    """log(1 + exp(x)) = RELU(x) + LOG(1 + EXP(-|x|)): no overflow for large |x|."""
    cur = x
    for code, extra, opts in (("ABS", [], None), ("NEG", [], None), ("EXP", [], None),
                              ("ADD", [scalar(ctx, 1, dt)], fb.AddOptionsT()), ("LOG", [], None)):
        cur = op(ctx, code, [cur, *extra], shape, dt, opts, hint)
    r = op(ctx, "RELU", [x], shape, dt, hint=hint)
    return op(ctx, "ADD", [r, cur], shape, dt, fb.AddOptionsT(), hint, out)


@TFLITE.converts("Softplus", since=1, check=F32_ONLY)
def softplus(node, ctx):
    """RELU(x) + LOG(1 + EXP(-|x|)) (no overflow)"""
    x, out, shape, dt = _io(node, ctx)
    _softplus(ctx, x, shape, dt, out, ctx.output(out))


@TFLITE.converts("Mish", since=18, check=F32_ONLY)
def mish(node, ctx):
    """x * TANH(softplus(x)), softplus as RELU(x) + LOG(1 + EXP(-|x|))"""
    x, out, shape, dt = _io(node, ctx)
    t = op(ctx, "TANH", [_softplus(ctx, x, shape, dt, out)], shape, dt, hint=out)
    ctx.emit("MUL", [x, t], [ctx.output(out)], fb.MulOptionsT())


@TFLITE.converts("Softsign", since=1, check=F32_ONLY)
def softsign(node, ctx):
    """x / (1 + |x|) (ABS, ADD, DIV)"""
    x, out, shape, dt = _io(node, ctx)
    d = op(ctx, "ADD", [op(ctx, "ABS", [x], shape, dt, hint=out), scalar(ctx, 1, dt)], shape, dt, fb.AddOptionsT(), out)
    ctx.emit("DIV", [x, d], [ctx.output(out)], fb.DivOptionsT())


@TFLITE.converts("ThresholdedRelu", since=10, check=F32_ONLY)
def thresholded_relu(node, ctx):
    """SELECT_V2(x > alpha, x, 0)"""
    x, out, shape, dt = _io(node, ctx)
    gt = op(ctx, "GREATER", [x, scalar(ctx, float(ctx.attrs(node).get("alpha", 1.0)), dt)], shape, np.bool_,
            hint=out)
    ctx.emit("SELECT_V2", [gt, x, scalar(ctx, 0, dt)], [ctx.output(out)])
