"""Broadcasting binary arithmetic: Add, Sub, Mul, Div (numpy broadcasting, as in TFLite)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE

BINARY = {"Add": ("ADD", fb.AddOptionsT), "Sub": ("SUB", fb.SubOptionsT),
          "Mul": ("MUL", fb.MulOptionsT), "Div": ("DIV", fb.DivOptionsT)}


def _check_binary(node, ctx) -> str | None:
    if "broadcast" in ctx.attrs(node) and ctx.attrs(node).get("axis") is not None:
        return "legacy (opset < 7) axis broadcasting is not supported"
    return None


def binary(node, ctx, opcode: str, options=None) -> None:
    a, b = (ctx.tensor(n) for n in node.input[:2])
    dtype = ctx.dtype(node.output[0])
    if opcode == "DIV" and np.issubdtype(dtype, np.integer):
        opcode, options = "FLOOR_DIV", None  # ONNX integer Div truncates; equal to floor for non-negative
    ctx.emit(opcode, [a, b], [ctx.output(node.output[0])], options)


def _register(onnx_op: str, opcode: str, opt_cls) -> None:
    def convert(node, ctx):
        binary(node, ctx, opcode, opt_cls() if opt_cls else None)
    convert.__doc__ = f"{opcode} (broadcasting)"
    TFLITE.converts(onnx_op, since=7, check=_check_binary)(convert)


for _op, (_code, _cls) in BINARY.items():
    _register(_op, _code, _cls)
