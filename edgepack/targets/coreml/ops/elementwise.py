"""Elementwise arithmetic: binary ops with numpy broadcasting, variadic Sum/Max/Min, unary math."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..registry import COREML

def _binary(op, node, ctx):
    a, b = ctx.x(node.input[0]), ctx.x(node.input[1])
    ctx.set(ctx.out(), getattr(mb, op)(x=a, y=b, name=ctx.out()))


def _register_binary(onnx_op, mil_op):
    def convert(node, ctx):
        _binary(mil_op, node, ctx)
    convert.__doc__ = f"{mil_op} (numpy broadcasting)"
    COREML.converts(onnx_op, since=7)(convert)


for _onnx, _mil in (("Add", "add"), ("Sub", "sub"), ("Mul", "mul")):
    _register_binary(_onnx, _mil)


@COREML.converts("Div", since=7)
def div(node, ctx):
    """real_div; integers truncate toward zero as in ONNX (floor_div of magnitudes, sign restored)"""
    if ctx.dtype(node.input[0]).kind == "f":
        return _binary("real_div", node, ctx)
    a, b = ctx.x(node.input[0]), ctx.x(node.input[1])
    q = mb.floor_div(x=mb.abs(x=a, name=ctx.name("abs_a")), y=mb.abs(x=b, name=ctx.name("abs_b")), name=ctx.name("q"))
    negative = mb.logical_xor(x=mb.less(x=a, y=np.int32(0), name=ctx.name("neg_a")),
                              y=mb.less(x=b, y=np.int32(0), name=ctx.name("neg_b")), name=ctx.name("neg"))
    flipped = mb.mul(x=q, y=np.int32(-1), name=ctx.name("flip"))
    ctx.set(ctx.out(), mb.select(cond=negative, a=flipped, b=q, name=ctx.out()))


def _pow_check(node, ctx):
    if ctx.dtype(node.input[0]).kind != "f":
        return "integer Pow has no Core ML equivalent"
    return None


@COREML.converts("Pow", since=7, check=_pow_check)
def pow_(node, ctx):
    """pow; x*x for a constant exponent 2, sqrt for 0.5"""
    e = ctx.const(node.input[1])
    x = ctx.x(node.input[0])
    if e is not None and e.size == 1 and e.ndim <= ctx.rank(node.input[0]):
        if float(e.reshape(-1)[0]) == 2.0:
            return ctx.set(ctx.out(), mb.mul(x=x, y=x, name=ctx.out()))
        if float(e.reshape(-1)[0]) == 0.5:
            return ctx.set(ctx.out(), mb.sqrt(x=x, name=ctx.out()))
    y = ctx.x(node.input[1])
    if ctx.dtype(node.input[1]).kind != "f":      # an integer exponent: pow takes two float operands
        y = e.astype(np.float32) if e is not None else mb.cast(x=y, dtype="fp32", name=ctx.name("exp"))
    ctx.set(ctx.out(), mb.pow(x=x, y=y, name=ctx.out()))


def _variadic(op, node, ctx):
    acc = ctx.x(node.input[0])
    last = len(node.input) - 1
    if last == 0:
        return ctx.set(ctx.out(), mb.identity(x=acc, name=ctx.out()))
    for i, name in enumerate(node.input[1:], 1):
        acc = getattr(mb, op)(x=acc, y=ctx.x(name), name=ctx.out() if i == last else ctx.name(op))
    ctx.set(ctx.out(), acc)


@COREML.converts("Sum", since=6)
def sum_(node, ctx):
    """chained add"""
    _variadic("add", node, ctx)


@COREML.converts("Max", since=6)
def max_(node, ctx):
    """chained maximum"""
    _variadic("maximum", node, ctx)


@COREML.converts("Min", since=6)
def min_(node, ctx):
    """chained minimum"""
    _variadic("minimum", node, ctx)


UNARY = {"Sqrt": "sqrt", "Exp": "exp", "Abs": "abs", "Floor": "floor", "Ceil": "ceil", "Sin": "sin",
         "Cos": "cos", "Erf": "erf", "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu", "Sign": "sign"}


def _register_unary(onnx_op, mil_op):
    def convert(node, ctx):
        ctx.set(ctx.out(), getattr(mb, mil_op)(x=ctx.x(node.input[0]), name=ctx.out()))
    convert.__doc__ = mil_op
    COREML.converts(onnx_op, since=6)(convert)


for _onnx, _mil in UNARY.items():
    _register_unary(_onnx, _mil)


@COREML.converts("Log", since=6)
def log(node, ctx):
    """log (epsilon 0: log(0) is -inf as in ONNX)"""
    ctx.set(ctx.out(), mb.log(x=ctx.x(node.input[0]), epsilon=np.float32(0.0), name=ctx.out()))


@COREML.converts("Neg", since=6)
def neg(node, ctx):
    """mul by -1"""
    dt = np.float32 if ctx.dtype(node.input[0]).kind == "f" else np.int32
    ctx.set(ctx.out(), mb.mul(x=ctx.x(node.input[0]), y=dt(-1), name=ctx.out()))


@COREML.converts("Reciprocal", since=6)
def reciprocal(node, ctx):
    """real_div(1, x) (MIL's inverse adds an epsilon)"""
    ctx.set(ctx.out(), mb.real_div(x=np.float32(1.0), y=ctx.x(node.input[0]), name=ctx.out()))
