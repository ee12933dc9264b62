"""Activations: Relu."""
from __future__ import annotations

from ..registry import TFLITE


@TFLITE.converts("Relu", since=1)
def relu(node, ctx):
    """RELU"""
    ctx.emit("RELU", [ctx.tensor(node.input[0])], [ctx.output(node.output[0])])
