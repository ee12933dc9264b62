"""Quantized ONNX in (QDQ and onnxruntime's QOperator), for every target: the model's float twin
(``edgepack.model.qdq.dequantize``) plus what the model carried (``QdqInfo``: weight grids and scales,
activation scales and zero points). Each target then decides what to do with the model's own parameters:
the cpu target quantizes with them at int8 (``tflite/quant/qdq.py``), the qualcomm target quantizes with the
model's activation scales (``qualcomm/quantize.py``), the coreml target compresses the float twin's weights.

A float build of a quantized model runs without its rounding of activations, so ``edgepack.build`` judges it
against onnxruntime running the quantized model itself, with the int8 gate."""
from __future__ import annotations

from typing import Callable

import onnx

from ..errors import UnsupportedOpsError
from ..model.qdq import QdqInfo, dequantize, is_quantized


def float_view(model: onnx.ModelProto) -> tuple[onnx.ModelProto, QdqInfo | None]:
    """(``model``, None) for a float model; (its dequantized twin, what it carried) for a quantized one."""
    if not is_quantized(model):
        return model, None
    return dequantize(model)


def preflight(model: onnx.ModelProto, check: Callable[[onnx.ModelProto], None], target: str) -> None:
    """``check`` (the target's registry preflight) on the float twin, plus the Q/DQ nodes dequantizing left,
    all in one UnsupportedOpsError."""
    flt, info = float_view(model)
    problems: list[dict] = []
    try:
        check(flt)
    except UnsupportedOpsError as err:
        problems = list(err.problems)
    if info is not None:
        nodes = {n.name: n for n in flt.graph.node}
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        problems = [p for p in problems if p["node"] not in info.left]
        problems += [dict(op_type=nodes[n].op_type, node=n, opset=opset, reason=_why_left(flt, nodes[n]))
                     for n in info.left]
    if problems:
        raise UnsupportedOpsError(target, problems)


def _why_left(model: onnx.ModelProto, node: onnx.NodeProto) -> str:
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    if node.op_type == "DequantizeLinear" and node.input[0] in inputs:
        return "the model's input is quantized; edgepack takes float inputs (re-export with a float input)"
    if node.op_type == "QuantizeLinear" and node.output[0] in outputs:
        return "the model's output is quantized; edgepack gives float outputs (re-export with a float output)"
    return ("not part of a QuantizeLinear -> DequantizeLinear pair with the same parameters, nor on a "
            "constant: edgepack cannot tell what float value it stands for")
