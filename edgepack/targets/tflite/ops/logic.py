"""Comparison and logic (Equal, Less, Greater, LessOrEqual, GreaterOrEqual, Not, And, Or, Xor), Where,
Cast, CastLike."""
from __future__ import annotations

import numpy as np

from ..registry import TFLITE
from .common import BOOL, dtype_check
from .elementwise import INTEGERS, widen

_CMP = {"Equal": "EQUAL", "Less": "LESS", "Greater": "GREATER", "LessOrEqual": "LESS_EQUAL",
        "GreaterOrEqual": "GREATER_EQUAL"}
_LOGIC = {"And": "LOGICAL_AND", "Or": "LOGICAL_OR", "Xor": "NOT_EQUAL"}


def _binary(opcode, note):
    def convert(node, ctx):
        a, b = (widen(ctx, n) for n in node.input[:2])
        ctx.emit(opcode, [a, b], [ctx.output(node.output[0])])
    convert.__doc__ = f"{opcode} (broadcasting{note})"
    return convert


for _op, _code in _CMP.items():
    _allowed = INTEGERS | (BOOL if _op == "Equal" else set())
    TFLITE.converts(_op, since=7, check=dtype_check(_allowed))(_binary(_code, "; int8/uint8/int16 widened"))
for _op, _code in _LOGIC.items():
    TFLITE.converts(_op, since=7, check=dtype_check(BOOL))(_binary(_code, ", bool"))


@TFLITE.converts("Not", since=1, check=dtype_check(BOOL))
def not_(node, ctx):
    """LOGICAL_NOT"""
    ctx.emit("LOGICAL_NOT", [ctx.tensor(node.input[0])], [ctx.output(node.output[0])])


@TFLITE.converts("Where", since=9)
def where(node, ctx):
    """SELECT_V2 (broadcasting, any tensor type)"""
    ctx.emit("SELECT_V2", [ctx.tensor(n) for n in node.input[:3]], [ctx.output(node.output[0])])


# CAST converts between these; TFLite's float -> int conversion truncates toward zero and saturates (NaN
# becomes the maximum), where ONNX leaves out-of-range values undefined.
_CASTABLE = {np.dtype(t) for t in (np.float32, np.float16, np.int32, np.int64, np.int16, np.int8, np.uint8,
                                   np.bool_)}


def _check_cast(node, ctx):
    src, dst = ctx.dtype(node.input[0]), ctx.dtype(node.output[0])
    bad = sorted({str(t) for t in (src, dst) if t not in _CASTABLE})
    return f"CAST involving {', '.join(bad)} is not supported (use float32/int/bool types)" if bad else None


def _cast(node, ctx):
    x, out = ctx.tensor(node.input[0]), ctx.output(node.output[0])
    if ctx.dtype(node.input[0]) == ctx.dtype(node.output[0]):
        ctx.reshape(x, ctx.shape(node.output[0]), out=out)
    else:
        ctx.emit("CAST", [x], [out])


@TFLITE.converts("Cast", since=6, check=_check_cast)
def cast(node, ctx):
    """CAST (float -> int truncates toward zero and saturates; same type: RESHAPE)"""
    _cast(node, ctx)


@TFLITE.converts("CastLike", since=15, check=_check_cast)
def cast_like(node, ctx):
    """CAST to the second input's type (as Cast)"""
    _cast(node, ctx)
