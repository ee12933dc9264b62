"""Activations: Relu, LeakyRelu, PRelu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh, Elu, Gelu, Softplus..."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE


def _simple(opcode: str, options=None):
    def convert(node, ctx):
        ctx.emit(opcode, [ctx.tensor(node.input[0])], [ctx.output(node.output[0])], options() if options else None)
    convert.__doc__ = opcode
    return convert


for _op, _code, _since in (("Relu", "RELU", 1), ("Sigmoid", "LOGISTIC", 1), ("Tanh", "TANH", 1),
                           ("HardSwish", "HARD_SWISH", 14)):
    TFLITE.converts(_op, since=_since)(_simple(_code))


@TFLITE.converts("Elu", since=1)
def elu(node, ctx):
    """ELU (alpha 1), else x>0 ? x : alpha*(exp(x)-1) via SELECT_V2"""
    alpha = float(ctx.attrs(node).get("alpha", 1.0))
    x, out = ctx.tensor(node.input[0]), ctx.output(node.output[0])
    if alpha == 1.0:
        ctx.emit("ELU", [x], [out])
        return
    shape, dt = ctx.shape(node.input[0]), ctx.dtype(node.input[0])
    e = ctx.new(f"{out}_e", shape, dt)
    ctx.emit("ELU", [x], [e])
    neg = ctx.new(f"{out}_neg", shape, dt)
    ctx.emit("MUL", [e, ctx.constant(np.asarray(alpha, dt))], [neg], fb.MulOptionsT())
    pos = ctx.new(f"{out}_pos", shape, np.bool_)
    ctx.emit("GREATER", [x, ctx.constant(np.asarray(0, dt))], [pos])
    ctx.emit("SELECT_V2", [pos, x, neg], [out])


@TFLITE.converts("LeakyRelu", since=1)
def leaky_relu(node, ctx):
    """LEAKY_RELU"""
    opts = fb.LeakyReluOptionsT()
    opts.alpha = float(ctx.attrs(node).get("alpha", 0.01))
    ctx.emit("LEAKY_RELU", [ctx.tensor(node.input[0])], [ctx.output(node.output[0])], opts)


@TFLITE.converts("PRelu", since=7)
def prelu(node, ctx):
    """PRELU (slope broadcast numpy-style)"""
    x = ctx.tensor(node.input[0])
    slope = ctx.const(node.input[1])
    alpha = ctx.constant(slope, "slope") if slope is not None else ctx.tensor(node.input[1])
    ctx.emit("PRELU", [x, alpha], [ctx.output(node.output[0])])


def _clip_bounds(node, ctx):
    """(lo, hi): floats (+-inf when absent) or, for bounds computed at run time, IR tensor names."""
    a = ctx.attrs(node)
    if ctx.opset < 11:
        return float(a.get("min", -np.inf)), float(a.get("max", np.inf))
    out = []
    for i, default in ((1, -np.inf), (2, np.inf)):
        name = ctx.inp(node, i)
        value = ctx.const(name)
        out.append(default if name is None else float(value) if value is not None else ctx.tensor(name))
    return tuple(out)


@TFLITE.converts("Clip", since=1)
def clip(node, ctx):
    """RELU / RELU6 / RELU_N1_TO_1 when the bounds match, else MAXIMUM + MINIMUM (run-time bounds too)"""
    lo, hi = _clip_bounds(node, ctx)
    x, out, dt = ctx.tensor(node.input[0]), ctx.output(node.output[0]), ctx.dtype(node.input[0])
    fused = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, np.inf): "RELU"}.get((lo, hi)) \
        if not isinstance(lo, str) and not isinstance(hi, str) else None
    if fused and dt.kind == "f":
        ctx.emit(fused, [x], [out])
        return
    bound = lambda v: v if isinstance(v, str) else ctx.constant(np.asarray(v, dt))  # noqa: E731
    has_lo, has_hi = isinstance(lo, str) or lo != -np.inf, isinstance(hi, str) or hi != np.inf
    if has_lo:
        y = ctx.new(f"{out}_lo", ctx.shape(node.input[0]), dt) if has_hi else out
        ctx.emit("MAXIMUM", [x, bound(lo)], [y])
        x = y
    if has_hi:
        ctx.emit("MINIMUM", [x, bound(hi)], [out])
    if not has_lo and not has_hi:
        ctx.reshape(x, ctx.shape(node.input[0]), out=out)


@TFLITE.converts("HardSigmoid", since=1)
def hard_sigmoid(node, ctx):
    """MUL + ADD + RELU_0_TO_1: max(0, min(1, alpha*x + beta))"""
    a = ctx.attrs(node)
    alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
    shape, dt, out = ctx.shape(node.input[0]), ctx.dtype(node.input[0]), node.output[0]
    m = ctx.new(f"{out}_m", shape, dt)
    ctx.emit("MUL", [ctx.tensor(node.input[0]), ctx.constant(np.asarray(alpha, dt))], [m], fb.MulOptionsT())
    s = ctx.new(f"{out}_s", shape, dt)
    ctx.emit("ADD", [m, ctx.constant(np.asarray(beta, dt))], [s], fb.AddOptionsT())
    ctx.emit("RELU_0_TO_1", [s], [ctx.output(out)])


@TFLITE.converts("Gelu", since=20)
def gelu(node, ctx):
    """GELU (approximate none or tanh)"""
    opts = fb.GeluOptionsT()
    approx = ctx.attrs(node).get("approximate", b"none")
    opts.approximate = (approx.decode() if isinstance(approx, bytes) else approx) == "tanh"
    ctx.emit("GELU", [ctx.tensor(node.input[0])], [ctx.output(node.output[0])], opts)


@TFLITE.converts("Softplus", since=1)
def softplus(node, ctx):
    """log(1 + exp(x)) as RELU(x) + LOG(1 + EXP(-|x|)) (no overflow)"""
    x, out = ctx.tensor(node.input[0]), node.output[0]
    shape, dt = ctx.shape(node.input[0]), ctx.dtype(node.input[0])
    chain = [("ABS", []), ("NEG", []), ("EXP", []), ("ADD", [ctx.constant(np.asarray(1, dt))]), ("LOG", [])]
    cur = x
    for code, extra in chain:
        nxt = ctx.new(f"{out}_{code.lower()}", shape, dt)
        ctx.emit(code, [cur, *extra], [nxt], fb.AddOptionsT() if code == "ADD" else None)
        cur = nxt
    r = ctx.new(f"{out}_relu", shape, dt)
    ctx.emit("RELU", [x], [r])
    ctx.emit("ADD", [r, cur], [ctx.output(out)], fb.AddOptionsT())
