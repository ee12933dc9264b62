"""Unary math (Sqrt, Exp, Log, Abs, Neg, Floor, Ceil, Sin, Cos, Sign, Reciprocal, Erf), Pow, variadic
Max/Min/Sum/Mean."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import F32, NUMERIC, dtype_check


def _check_float(node, ctx):
    dt = ctx.dtype(node.input[0])
    return None if dt == np.float32 else f"{dt} input is not supported (float32 only)"


def _unary(opcode: str):
    def convert(node, ctx):
        ctx.emit(opcode, [ctx.tensor(node.input[0])], [ctx.output(node.output[0])])
    convert.__doc__ = f"{opcode} (float32)"
    return convert


for _op, _code in (("Sqrt", "SQRT"), ("Exp", "EXP"), ("Log", "LOG"), ("Floor", "FLOOR"), ("Ceil", "CEIL"),
                   ("Sin", "SIN"), ("Cos", "COS")):
    TFLITE.converts(_op, since=1, check=_check_float)(_unary(_code))


_check_signed = dtype_check(NUMERIC)


for _op, _code in (("Abs", "ABS"), ("Neg", "NEG"), ("Sign", "SIGN")):
    TFLITE.converts(_op, since=1, check=_check_signed)(_unary(_code))


@TFLITE.converts("Reciprocal", since=1, check=_check_float)
def reciprocal(node, ctx):
    """DIV(1, x)"""
    dt = ctx.dtype(node.input[0])
    ctx.emit("DIV", [ctx.constant(np.asarray(1, dt)), ctx.tensor(node.input[0])], [ctx.output(node.output[0])],
             fb.DivOptionsT())


@TFLITE.converts("Pow", since=7, check=_check_float)
def pow_(node, ctx):
    """SQUARE / SQRT / MUL for constant exponents 2, 0.5, 1; POW otherwise"""
    x, out = ctx.tensor(node.input[0]), ctx.output(node.output[0])
    e = ctx.const(node.input[1])
    if e is not None and e.size == 1 and ctx.shape(node.output[0]) == ctx.shape(node.input[0]):
        v = float(e.ravel()[0])
        if v == 2.0:
            ctx.emit("SQUARE", [x], [out])
            return
        if v == 0.5:
            ctx.emit("SQRT", [x], [out])
            return
    y = ctx.cast(ctx.tensor(node.input[1]), ctx.dtype(node.input[0])) if e is None else \
        ctx.constant(e.astype(ctx.dtype(node.input[0])), "exponent")
    ctx.emit("POW", [x, y], [out])


def _variadic(opcode: str, options=None):
    def convert(node, ctx):
        names = [ctx.tensor(n) for n in node.input]
        out, dt = node.output[0], ctx.dtype(node.output[0])
        if len(names) == 1:
            ctx.reshape(names[0], ctx.shape(out), out=ctx.output(out))
            return
        cur = names[0]
        for i, name in enumerate(names[1:], 1):
            last = i == len(names) - 1
            shape = np.broadcast_shapes(ctx.graph.tensors[cur].shape, ctx.graph.tensors[name].shape)
            nxt = ctx.output(out) if last else ctx.new(f"{out}_{i}", shape, dt)
            ctx.emit(opcode, [cur, name], [nxt], options() if options else None)
            cur = nxt
    convert.__doc__ = f"chain of {opcode} (variadic, broadcasting)"
    return convert


TFLITE.converts("Sum", since=6, check=dtype_check(NUMERIC))(_variadic("ADD", fb.AddOptionsT))
TFLITE.converts("Max", since=6, check=dtype_check(NUMERIC))(_variadic("MAXIMUM"))
TFLITE.converts("Min", since=6, check=dtype_check(NUMERIC))(_variadic("MINIMUM"))


@TFLITE.converts("Mean", since=6, check=dtype_check(F32))
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
    ctx.emit("MUL", [cur, ctx.constant(np.asarray(1.0 / len(names), dt))], [ctx.output(out)], fb.MulOptionsT())


_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@TFLITE.converts("Erf", since=9, check=_check_float)
def erf(node, ctx):
    """composed: sign(x) * (1 - poly(t) * exp(-x^2)), t = 1/(1+p|x|) (max error 1.5e-7)"""
    x, out = ctx.tensor(node.input[0]), node.output[0]
    shape, dt = ctx.shape(node.input[0]), np.dtype(np.float32)

    def op(code, ins, options=None):
        y = ctx.new(f"{out}_{code.lower()}", shape, dt)
        ctx.emit(code, ins, [y], options)
        return y

    c = lambda v: ctx.constant(np.asarray(v, dt))  # noqa: E731
    ax = op("ABS", [x])
    t = op("DIV", [c(1.0), op("ADD", [op("MUL", [ax, c(0.3275911)], fb.MulOptionsT()), c(1.0)], fb.AddOptionsT())],
           fb.DivOptionsT())
    poly = c(_ERF_A[4])
    for a in reversed(_ERF_A[:4]):
        poly = op("ADD", [op("MUL", [poly, t], fb.MulOptionsT()), c(a)], fb.AddOptionsT())
    poly = op("MUL", [poly, t], fb.MulOptionsT())
    e = op("EXP", [op("NEG", [op("SQUARE", [x])])])
    y = op("SUB", [c(1.0), op("MUL", [poly, e], fb.MulOptionsT())], fb.SubOptionsT())
    ctx.emit("MUL", [op("SIGN", [x]), y], [ctx.output(out)], fb.MulOptionsT())
