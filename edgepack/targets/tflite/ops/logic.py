"""Comparison and logic (Equal, Less, Greater, LessOrEqual, GreaterOrEqual, Not, And, Or, Xor), Where, Cast."""
from __future__ import annotations

import numpy as np

from ..registry import TFLITE
from .common import BOOL, NUMERIC, dtype_check

_CMP = {"Equal": "EQUAL", "Less": "LESS", "Greater": "GREATER", "LessOrEqual": "LESS_EQUAL",
        "GreaterOrEqual": "GREATER_EQUAL", "And": "LOGICAL_AND", "Or": "LOGICAL_OR", "Xor": "NOT_EQUAL"}


def _binary(opcode):
    def convert(node, ctx):
        ctx.emit(opcode, [ctx.tensor(node.input[0]), ctx.tensor(node.input[1])], [ctx.output(node.output[0])])
    convert.__doc__ = f"{opcode} (broadcasting)"
    return convert


for _op, _code in _CMP.items():
    _allowed = BOOL if _op in ("And", "Or", "Xor") else NUMERIC | (BOOL if _op == "Equal" else set())
    TFLITE.converts(_op, since=7, check=dtype_check(_allowed))(_binary(_code))


@TFLITE.converts("Not", since=1, check=dtype_check(BOOL))
def not_(node, ctx):
    """LOGICAL_NOT"""
    ctx.emit("LOGICAL_NOT", [ctx.tensor(node.input[0])], [ctx.output(node.output[0])])


@TFLITE.converts("Where", since=9)
def where(node, ctx):
    """SELECT_V2 (broadcasting)"""
    ctx.emit("SELECT_V2", [ctx.tensor(n) for n in node.input[:3]], [ctx.output(node.output[0])])


_CASTABLE = {np.dtype(t) for t in (np.float32, np.float16, np.int32, np.int64, np.int16, np.int8, np.uint8,
                                   np.bool_, np.uint16, np.uint32)}


def _check_cast(node, ctx):
    src, dst = ctx.dtype(node.input[0]), ctx.dtype(node.output[0])
    bad = [str(t) for t in (src, dst) if t not in _CASTABLE]
    return f"cast involving {', '.join(bad)} is not supported" if bad else None


@TFLITE.converts("Cast", since=6, check=_check_cast)
def cast(node, ctx):
    """CAST"""
    x, out = ctx.tensor(node.input[0]), ctx.output(node.output[0])
    if ctx.dtype(node.input[0]) == ctx.dtype(node.output[0]):
        ctx.reshape(x, ctx.shape(node.output[0]), out=out)
    else:
        ctx.emit("CAST", [x], [out])
