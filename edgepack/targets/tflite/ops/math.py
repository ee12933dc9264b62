"""Unary math (Sqrt, Exp, Log, Abs, Neg, Floor, Ceil, Round, Sin, Cos, Sign, Reciprocal, Erf, IsNaN, IsInf),
Pow, variadic Max/Min/Sum/Mean."""
from __future__ import annotations

import math

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import F32, dtype_check
from .elementwise import I64, INTEGERS, abs_, cast_value, narrow, op, scalar, wide_output, widen

F32_ONLY = dtype_check(F32)


def _unary(opcode: str):
    def convert(node, ctx):
        ctx.emit(opcode, [ctx.tensor(node.input[0])], [ctx.output(node.output[0])])
    convert.__doc__ = f"{opcode} (float32)"
    return convert


for _op, _code, _since in (("Sqrt", "SQRT", 6), ("Exp", "EXP", 6), ("Log", "LOG", 6), ("Floor", "FLOOR", 6),
                           ("Ceil", "CEIL", 6), ("Sin", "SIN", 7), ("Cos", "COS", 7), ("Round", "ROUND", 11)):
    TFLITE.converts(_op, since=_since, check=F32_ONLY)(_unary(_code))


def _integer_unary(fn):
    """A converter running ``fn(ctx, x, y)`` (x, y in the work dtype) and narrowing y to the ONNX output."""
    def convert(node, ctx):
        y = wide_output(ctx, node.output[0])
        fn(ctx, widen(ctx, node.input[0]), y)
        narrow(ctx, y, node.output[0])
    convert.__doc__ = fn.__doc__
    return convert


@TFLITE.converts("Abs", since=6, check=dtype_check(INTEGERS))
@_integer_unary
def abs_op(ctx, x, y):
    """ABS (float32, int32; int64 as MAXIMUM(x, -x); int8/uint8/int16 widened)"""
    abs_(ctx, x, y, out=y)


@TFLITE.converts("Neg", since=6, check=dtype_check(INTEGERS))
@_integer_unary
def neg(ctx, x, y):
    """NEG (float32, int32, int64; int8/int16 widened)"""
    ctx.emit("NEG", [x], [y])


@TFLITE.converts("Sign", since=9, check=dtype_check(INTEGERS))
@_integer_unary
def sign(ctx, x, y):
    """SIGN (float32, int32; int64 through a float32 CAST, exact for the sign)"""
    t = ctx.graph.tensors[x]
    if t.dtype != I64:
        ctx.emit("SIGN", [x], [y])
        return
    s = op(ctx, "SIGN", [cast_value(ctx, x, np.float32)], t.shape, np.float32, hint=y)
    ctx.emit("CAST", [s], [y])


@TFLITE.converts("Reciprocal", since=6, check=F32_ONLY)
def reciprocal(node, ctx):
    """DIV(1, x)"""
    dt = ctx.dtype(node.input[0])
    ctx.emit("DIV", [scalar(ctx, 1, dt), ctx.tensor(node.input[0])], [ctx.output(node.output[0])], fb.DivOptionsT())


@TFLITE.converts("IsNaN", since=9, check=F32_ONLY)
def is_nan(node, ctx):
    """NOT_EQUAL(x, x)"""
    x = ctx.tensor(node.input[0])
    ctx.emit("NOT_EQUAL", [x, x], [ctx.output(node.output[0])])


@TFLITE.converts("IsInf", since=10, check=F32_ONLY)
def is_inf(node, ctx):
    """EQUAL to +inf / -inf, or |x| == inf (detect_positive / detect_negative)"""
    a = ctx.attrs(node)
    pos, neg_ = a.get("detect_positive", 1), a.get("detect_negative", 1)
    x, out = ctx.tensor(node.input[0]), ctx.output(node.output[0])
    if pos and neg_:
        x = abs_(ctx, x, out)
    elif not pos and not neg_:  # nothing is detected: all False
        ctx.emit("LESS", [x, x], [out])
        return
    ctx.emit("EQUAL", [x, scalar(ctx, np.inf if pos else -np.inf, np.float32)], [out])


def _pow_shortcut(ctx, x: str, v: float, out: str) -> bool:
    """x ** v for a constant float exponent without POW; False when there is no shortcut."""
    t = ctx.graph.tensors[x]
    if v == 1.0:
        ctx.reshape(x, t.shape, out=out)
    elif v == 2.0:
        ctx.emit("SQUARE", [x], [out])
    elif v == 3.0:
        ctx.emit("MUL", [op(ctx, "SQUARE", [x], t.shape, t.dtype, hint=out), x], [out], fb.MulOptionsT())
    elif v == 0.5:
        ctx.emit("SQRT", [x], [out])
    elif v == -0.5:
        ctx.emit("RSQRT", [x], [out])
    elif v == -1.0:
        ctx.emit("DIV", [scalar(ctx, 1, t.dtype), x], [out], fb.DivOptionsT())
    else:
        return False
    return True


@TFLITE.converts("Pow", since=7, check=dtype_check(INTEGERS))
def pow_(node, ctx):
    """POW (int bases in int32); constant exponents 1, 2, 3, 0.5, -0.5, -1 as RESHAPE/SQUARE/MUL/SQRT/RSQRT/DIV

    An int64 base is computed in int32; an integer base with a float exponent in float32, then truncated."""
    x_name, e_name, out = node.input[0], node.input[1], node.output[0]
    e = ctx.const(e_name)
    if ctx.dtype(x_name) == np.float32:
        if e is not None and e.size == 1 and ctx.shape(out) == ctx.shape(x_name) \
                and _pow_shortcut(ctx, ctx.tensor(x_name), float(e.ravel()[0]), ctx.output(out)):
            return
        exponent = cast_value(ctx, ctx.tensor(e_name), np.float32)
        ctx.emit("POW", [ctx.tensor(x_name), exponent], [ctx.output(out)])
        return
    y = wide_output(ctx, out)
    work = np.dtype(np.float32) if ctx.dtype(e_name) == np.float32 else np.dtype(np.int32)
    base, exponent = (cast_value(ctx, widen(ctx, n), work) for n in (x_name, e_name))
    if ctx.graph.tensors[y].dtype == work:
        ctx.emit("POW", [base, exponent], [y])
    else:  # int64 output, or an integer base with a float exponent: truncated toward zero like onnxruntime
        ctx.emit("CAST", [op(ctx, "POW", [base, exponent], ctx.shape(out), work, hint=out)], [y])
    narrow(ctx, y, out)


def _variadic(opcode: str, options=None):
    def convert(node, ctx):
        names = [widen(ctx, n) for n in node.input]
        out = node.output[0]
        y = wide_output(ctx, out)
        dt = ctx.graph.tensors[y].dtype
        cur = names[0]
        if len(names) == 1:
            ctx.reshape(cur, ctx.shape(out), out=y)
        for i, name in enumerate(names[1:], 1):
            shape = np.broadcast_shapes(ctx.graph.tensors[cur].shape, ctx.graph.tensors[name].shape)
            nxt = y if i == len(names) - 1 else ctx.new(f"{out}_{i}", shape, dt)
            ctx.emit(opcode, [cur, name], [nxt], options() if options else None)
            cur = nxt
        narrow(ctx, y, out)
    convert.__doc__ = f"chain of {opcode} (variadic, broadcasting; int8/uint8/int16 widened)"
    return convert


TFLITE.converts("Sum", since=6, check=dtype_check(INTEGERS))(_variadic("ADD", fb.AddOptionsT))
TFLITE.converts("Max", since=6, check=dtype_check(INTEGERS))(_variadic("MAXIMUM"))
TFLITE.converts("Min", since=6, check=dtype_check(INTEGERS))(_variadic("MINIMUM"))


@TFLITE.converts("Mean", since=6, check=F32_ONLY)
def mean(node, ctx):
    """chain of ADD, then MUL by 1/n"""
    out = node.output[0]
    names = [ctx.tensor(n) for n in node.input]
    dt = ctx.dtype(out)
    cur = names[0]
    for i, name in enumerate(names[1:], 1):
        shape = np.broadcast_shapes(ctx.graph.tensors[cur].shape, ctx.graph.tensors[name].shape)
        nxt = ctx.new(f"{out}_{i}", shape, dt)
        ctx.emit("ADD", [cur, name], [nxt], fb.AddOptionsT())
        cur = nxt
    ctx.emit("MUL", [cur, scalar(ctx, 1.0 / len(names), dt)], [ctx.output(out)], fb.MulOptionsT())


# erf: |x| < 0.5 by its Taylor series (7 terms, error < 2e-9, good relative accuracy near 0), elsewhere by
# Abramowitz & Stegun 7.1.26: 1 - t*poly(t)*exp(-x^2), t = 1/(1 + p|x|) (error < 1.5e-7), with x's sign.
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_TAYLOR = tuple(2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(7))


def erf_program(emit, const, x):
    """erf(x) as a straight-line program: ``emit(opcode, inputs, options) -> tensor``, ``const(v) -> tensor``.

    Shared by the Erf converter and by ``patterns.py``, which recognises the ops it emitted."""
    mul, add = lambda a, b: emit("MUL", [a, b], fb.MulOptionsT()), lambda a, b: emit("ADD", [a, b], fb.AddOptionsT())
    ax, x2 = emit("ABS", [x], None), emit("SQUARE", [x], None)
    small = emit("LESS", [ax, const(0.5)], None)
    series = const(_TAYLOR[-1])
    for c in reversed(_TAYLOR[:-1]):
        series = add(mul(series, x2), const(c))
    series = mul(series, x)
    t = emit("DIV", [const(1.0), add(mul(ax, const(_AS_P)), const(1.0))], fb.DivOptionsT())
    poly = const(_AS_A[-1])
    for a in reversed(_AS_A[:-1]):
        poly = add(mul(poly, t), const(a))
    tail = mul(mul(poly, t), emit("EXP", [emit("NEG", [x2], None)], None))
    far = mul(emit("SIGN", [x], None), emit("SUB", [const(1.0), tail], fb.SubOptionsT()))
    return emit("SELECT_V2", [small, series, far], None)


@TFLITE.converts("Erf", since=9, check=F32_ONLY)
def erf(node, ctx):
    """35 elementwise ops: Taylor series for |x| < 0.5, Abramowitz-Stegun 7.1.26 beyond (abs error < 1e-6)"""
    x, out, shape = ctx.tensor(node.input[0]), node.output[0], ctx.shape(node.input[0])

    def emit(code, ins, options):
        dt = np.bool_ if code == "LESS" else np.float32
        return op(ctx, code, ins, shape, dt, options, out)

    y = erf_program(emit, lambda v: scalar(ctx, v, np.float32), x)
    ctx.graph.ops[-1].outputs = [ctx.output(out)]  # the SELECT_V2 writes the node's output directly
    del ctx.graph.tensors[y]
