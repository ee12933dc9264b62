"""Comparisons and logic: Equal, Less, Greater (and the -OrEqual forms), Not, And, Or, Where."""
from coremltools.converters.mil import Builder as mb

from ..registry import COREML

COMPARE = {"Equal": "equal", "Less": "less", "Greater": "greater", "LessOrEqual": "less_equal",
           "GreaterOrEqual": "greater_equal", "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor"}


def _register(onnx_op, mil_op):
    def convert(node, ctx):
        ctx.set(ctx.out(), getattr(mb, mil_op)(x=ctx.x(node.input[0]), y=ctx.x(node.input[1]), name=ctx.out()))
    convert.__doc__ = f"{mil_op} (numpy broadcasting)"
    COREML.converts(onnx_op, since=7)(convert)


for _onnx, _mil in COMPARE.items():
    _register(_onnx, _mil)


@COREML.converts("Not", since=1)
def not_(node, ctx):
    """logical_not"""
    ctx.set(ctx.out(), mb.logical_not(x=ctx.x(node.input[0]), name=ctx.out()))


@COREML.converts("Where", since=9)
def where(node, ctx):
    """select"""
    cond, a, b = (ctx.x(n) for n in node.input)
    ctx.set(ctx.out(), mb.select(cond=cond, a=a, b=b, name=ctx.out()))
