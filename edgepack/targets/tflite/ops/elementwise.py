"""Broadcasting binary arithmetic: Add, Sub, Mul, Div, Mod; and the integer-widening helpers the other
elementwise families share.

TFLite's kernels broadcast numpy-style (checked up to rank 8 in LiteRT 2.3). Plain int8 / uint8 / int16
tensors are taken for quantized ones by most arithmetic and comparison kernels (they abort or compute with
a zero scale), so those types are widened: CAST to int32, compute, CAST back (wrapping like C, as
onnxruntime does).
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import NUMERIC, all_checks, dtype_check

SMALL_INT = {np.dtype(t) for t in (np.int8, np.uint8, np.int16)}
INTEGERS = NUMERIC | SMALL_INT              # what the widening converters accept
I32, I64 = np.dtype(np.int32), np.dtype(np.int64)


def work_dtype(dtype) -> np.dtype:
    """The dtype a value of ``dtype`` is computed in (int32 for int8/uint8/int16)."""
    dtype = np.dtype(dtype)
    return I32 if dtype in SMALL_INT else dtype


def cast_value(ctx, x: str, dtype) -> str:
    """IR tensor ``x`` as ``dtype``: converted at build time when constant, else through a CAST op."""
    t = ctx.graph.tensors[x]
    if t.data is not None and t.dtype != np.dtype(dtype):
        return ctx.constant(t.data.astype(dtype), f"{x}_{np.dtype(dtype).name}")
    return ctx.cast(x, dtype)


def widen(ctx, onnx_name: str) -> str:
    """The IR tensor of an ONNX input in its work dtype."""
    return cast_value(ctx, ctx.tensor(onnx_name), work_dtype(ctx.dtype(onnx_name)))


def wide_output(ctx, onnx_name: str) -> str:
    """Declare an ONNX output and return the tensor to compute it into (an int32 stand-in for small ints:
    finish with ``narrow``)."""
    out = ctx.output(onnx_name)
    dt = ctx.dtype(onnx_name)
    return out if work_dtype(dt) == dt else ctx.new(f"{out}_wide", ctx.shape(onnx_name), work_dtype(dt))


def narrow(ctx, y: str, onnx_name: str) -> None:
    """CAST the stand-in ``y`` back to the ONNX output (no-op when ``y`` is the output)."""
    if y != onnx_name:
        ctx.emit("CAST", [y], [onnx_name])


def op(ctx, code: str, inputs, shape, dtype, options=None, hint: str = "t", out: str | None = None) -> str:
    """Emit one op into ``out`` or a fresh tensor; return the output's name."""
    y = out or ctx.new(f"{hint}_{code.lower()}", shape, dtype)
    ctx.emit(code, inputs, [y], options)
    return y


def scalar(ctx, value, dtype) -> str:
    """A 0-d constant (broadcasts against any shape)."""
    return ctx.constant(np.asarray(value, dtype))


def abs_(ctx, x: str, hint: str = "t", out: str | None = None) -> str:
    """|x|: ABS (float32, int32), MAXIMUM(x, -x) for int64 (ABS has no int64 kernel)."""
    t = ctx.graph.tensors[x]
    if t.dtype != I64:
        return op(ctx, "ABS", [x], t.shape, t.dtype, hint=hint, out=out)
    minus = op(ctx, "NEG", [x], t.shape, t.dtype, hint=hint)
    return op(ctx, "MAXIMUM", [x, minus], t.shape, t.dtype, hint=hint, out=out)


BINARY = {"Add": ("ADD", fb.AddOptionsT), "Sub": ("SUB", fb.SubOptionsT),
          "Mul": ("MUL", fb.MulOptionsT), "Div": ("DIV", fb.DivOptionsT)}


def _check_binary(node, ctx) -> str | None:
    if "broadcast" in ctx.attrs(node) and ctx.attrs(node).get("axis") is not None:
        return "legacy (opset < 7) axis broadcasting is not supported"
    return None


def binary(node, ctx, opcode: str, options=None) -> None:
    """One broadcasting TFLite op in the work dtype; int64 DIV through int32 (no int64 DIV kernel)."""
    a, b = (widen(ctx, n) for n in node.input[:2])
    out = node.output[0]
    y = wide_output(ctx, out)
    if opcode == "DIV" and ctx.graph.tensors[y].dtype == I64:
        q = op(ctx, "DIV", [cast_value(ctx, a, I32), cast_value(ctx, b, I32)], ctx.shape(out), I32, options, out)
        ctx.emit("CAST", [q], [y])
    else:
        ctx.emit(opcode, [a, b], [y], options)
    narrow(ctx, y, out)


def _register(onnx_op: str, opcode: str, opt_cls) -> None:
    def convert(node, ctx):
        binary(node, ctx, opcode, opt_cls())
    note = {"DIV": " (ints truncate toward zero as in ONNX; int64 computed in int32, |values| < 2^31)"}
    convert.__doc__ = f"{opcode} (broadcasting; int8/uint8/int16 widened to int32){note.get(opcode, '')}"
    TFLITE.converts(onnx_op, since=7, check=all_checks(_check_binary, dtype_check(INTEGERS)))(convert)


for _op, (_code, _cls) in BINARY.items():
    _register(_op, _code, _cls)


@TFLITE.converts("Mod", since=10, check=dtype_check(INTEGERS))
def mod(node, ctx):
    """FLOOR_MOD (fmod=0, sign of the divisor); fmod=1 as +-FLOOR_MOD(|a|, |b|) with a's sign (C fmod)"""
    a, b = (widen(ctx, n) for n in node.input[:2])
    out = node.output[0]
    y = wide_output(ctx, out)
    if not ctx.attrs(node).get("fmod", 0):
        ctx.emit("FLOOR_MOD", [a, b], [y])
    else:
        shape, dt = ctx.shape(out), ctx.graph.tensors[y].dtype
        m = op(ctx, "FLOOR_MOD", [abs_(ctx, a, out), abs_(ctx, b, out)], shape, dt, hint=out)
        neg = op(ctx, "LESS", [a, scalar(ctx, 0, dt)], ctx.graph.tensors[a].shape, np.bool_, hint=out)
        ctx.emit("SELECT_V2", [neg, op(ctx, "NEG", [m], shape, dt, hint=out), m], [y])
    narrow(ctx, y, out)
