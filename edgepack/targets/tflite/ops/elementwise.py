"""Broadcasting binary arithmetic: Add, Sub, Mul, Div (numpy broadcasting, as in TFLite; float32/int32/int64)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import NUMERIC, all_checks, dtype_check

BINARY = {"Add": ("ADD", fb.AddOptionsT), "Sub": ("SUB", fb.SubOptionsT),
          "Mul": ("MUL", fb.MulOptionsT), "Div": ("DIV", fb.DivOptionsT)}


def _check_binary(node, ctx) -> str | None:
    if "broadcast" in ctx.attrs(node) and ctx.attrs(node).get("axis") is not None:
        return "legacy (opset < 7) axis broadcasting is not supported"
    return None


def binary(node, ctx, opcode: str, options=None) -> None:
    a, b = (ctx.tensor(n) for n in node.input[:2])
    dtype = ctx.dtype(node.output[0])
    out = ctx.output(node.output[0])
    if opcode == "DIV" and dtype == np.int64:  # DIV has int32 (truncating, like ONNX) but no int64 kernel
        a32, b32 = ctx.cast(a, np.int32), ctx.cast(b, np.int32)
        q = ctx.new(f"{out}_i32", ctx.shape(node.output[0]), np.int32)
        ctx.emit("DIV", [a32, b32], [q], options)
        ctx.cast(q, np.int64, out=out)
        return
    ctx.emit(opcode, [a, b], [out], options)


def _register(onnx_op: str, opcode: str, opt_cls) -> None:
    def convert(node, ctx):
        binary(node, ctx, opcode, opt_cls() if opt_cls else None)
    convert.__doc__ = f"{opcode} (broadcasting)"
    TFLITE.converts(onnx_op, since=7, check=all_checks(_check_binary, dtype_check(NUMERIC)))(convert)


for _op, (_code, _cls) in BINARY.items():
    _register(_op, _code, _cls)
