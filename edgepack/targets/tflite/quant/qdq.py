"""int8 from a quantized (QDQ / QOperator) ONNX model's own parameters, without recalibration.

``edgepack.model.qdq.dequantize`` gives the float model and what the model quantized. Here that becomes
what the full-integer pass (``full_integer.py``) takes from calibration:

* activation ranges: each Q/DQ-quantized int8/uint8 activation's range ``[(qmin - zp) * s, (qmax - zp) * s]``,
  from which the int8 pass derives exactly the model's scale (and zero point, shifted by 128 for uint8).
  Tensors the lowering renamed (``x_nhwc``) or made in between (transposes, reshapes) take the range of the
  value they carry. A tensor the model leaves in float gets no range, so the ops around it stay float, as
  onnxruntime runs them.
* weight scales, per ONNX node: the model's own per-output-channel (or per-tensor) scales, used when the
  lowered weights sit on that integer grid within [-127, 127] (int8, or int4 carried in int8).
* float nodes: weighted nodes whose quantization TFLite cannot carry (per-channel scales on another axis
  than the output channels, blocked scales, 16-bit weights, a zero point that leaves [-127, 127]) or that the
  model itself left in float, with the reason; and a constant the model applies in float to a rounded tensor
  (onnxruntime's QDQ MatMul rounds the product, then adds the bias in float): the lowering does not fold it
  into the product (``lower(rounded=...)``), so the int8 model rounds exactly where the model does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx.numpy_helper

from ....model.qdq import QdqInfo, WeightQuant
from ..layout import onnx_name

INT8_TYPES = ("int8", "uint8")
CARRIED_WEIGHTS = ("int8", "uint8", "int4", "uint4")
PERMUTING = {"RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS"}     # same values, another arrangement
WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "MatMul": 1, "Gemm": 1}


@dataclass
class ModelQuant:
    """The model's quantization in the terms of the lowered TFLite graph."""
    ranges: dict[str, tuple[float, float]]
    weight_scales: dict[str, np.ndarray]                       # ONNX node -> per-output-channel scales
    float_nodes: dict[str, str] = field(default_factory=dict)  # ONNX node -> why it stays float
    counts: dict = field(default_factory=dict)
    rounded: set[str] = field(default_factory=set)             # IR tensors the model itself rounds


def model_quant(model: onnx.ModelProto, info: QdqInfo, low) -> ModelQuant:
    """Ranges, weight scales and float nodes for the lowered float graph ``low`` of the dequantized ``model``."""
    acts = info.activations
    usable = {n: a.range() for n, a in acts.items() if a.dtype in INT8_TYPES and not a.per_axis}
    ranges = _ir_ranges(low.graph, usable)
    scales, floats = {}, _float_constants(model, usable)
    for node in model.graph.node:
        if node.op_type not in WEIGHT_INPUT or len(node.input) <= WEIGHT_INPUT[node.op_type]:
            continue
        w = node.input[WEIGHT_INPUT[node.op_type]]
        if w not in {t.name for t in model.graph.initializer}:
            continue                                   # two activations (attention): the ranges decide
        q = info.weights.get(w)
        why = "the model keeps its weights in float" if q is None else _refusal(node, q)
        if why:
            floats[node.name] = why
        else:
            scales[node.name] = q.scale
    wide = sorted({a.dtype for a in acts.values() if a.dtype not in INT8_TYPES or a.per_axis})
    counts = {"activation_ranges": len(usable), "weight_scales": len(scales),
              "float_nodes": len(floats),
              "activations_not_int8": sum(1 for a in acts.values() if a.dtype not in INT8_TYPES or a.per_axis),
              "activation_types_not_int8": wide, **info.counts}
    rounded = {n for n in ranges if onnx_name(n) in usable}
    return ModelQuant(ranges, scales, floats, counts, rounded)


def _float_constants(model: onnx.ModelProto, usable: dict) -> dict[str, str]:
    """Add / Sub / Mul / Div of a rounded tensor by a constant of several values whose result the model does
    not round (the bias onnxruntime's QDQ adds after a MatMul's rounded product): float nodes, as the model
    runs them. Folded into the product, or run in int8 with the constant rounded to one int8 scale, they
    would round where the model does not and drift from it layer after layer. A single value (GELU's
    ``x / sqrt(2)``, an attention scale) is exact in int8 and stays there."""
    consts = {t.name: t for t in model.graph.initializer}
    out: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type not in ("Add", "Sub", "Mul", "Div") or len(node.input) != 2 or node.output[0] in usable:
            continue
        x, c = node.input
        if x in consts:
            x, c = c, x
        if x in usable and c in consts and np.unique(onnx.numpy_helper.to_array(consts[c])).size > 1:
            out[node.name] = f"the model applies this constant in float to the rounded tensor {x}"
    return out


def _refusal(node: onnx.NodeProto, q: WeightQuant) -> str | None:
    """Why TFLite's int8 kernels cannot take this weight quantization as it is (None: they can)."""
    if q.blocked:
        return "blocked (per-block) weight scales; TFLite takes one scale per output channel"
    if q.dtype not in CARRIED_WEIGHTS:
        return f"{q.dtype} weights; TFLite's int8 kernels take 8-bit weights"
    lo, hi = int(q.grid.min(initial=0)), int(q.grid.max(initial=0))
    if lo < -127 or hi > 127:
        return (f"weights minus zero point span [{lo}, {hi}]; TFLite needs symmetric int8 weights "
                "(zero point 0, values in [-127, 127])")
    want = _output_axis(node, q.grid.ndim)
    if q.axis is not None and q.axis != want:
        return (f"per-channel weight scales on axis {q.axis}; TFLite quantizes {node.op_type} weights per "
                f"output channel (axis {want} of the ONNX weight)")
    return None


def _output_axis(node: onnx.NodeProto, rank: int) -> int:
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        return 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
    return 0 if node.op_type == "Conv" else rank - 1


def _ir_ranges(graph, usable: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Model ranges on the IR's activation tensors: by name (``x`` or ``x_nhwc``), then carried through
    value-preserving ops forwards (any op that keeps its input's parameters) and permutations backwards."""
    from .full_integer import SAME
    ranges = {}
    for name, t in graph.tensors.items():
        if t.data is None and t.dtype == np.float32:
            if onnx_name(name) in usable:
                ranges[name] = usable[onnx_name(name)]
    changed = True
    while changed:
        changed = False
        for op in graph.ops:
            acts = [n for n in op.inputs if n is not None and graph.tensors[n].data is None]
            if op.opcode in SAME and acts and acts[0] in ranges:
                for out in op.outputs:
                    if out not in ranges and graph.tensors[out].dtype == np.float32:
                        ranges[out], changed = ranges[acts[0]], True
            if op.opcode in PERMUTING and acts and acts[0] not in ranges and op.outputs[0] in ranges:
                ranges[acts[0]], changed = ranges[op.outputs[0]], True
    return ranges


def exact_weights(data: np.ndarray, scale: np.ndarray, axis: int) -> np.ndarray | None:
    """``data`` as int8 on the model's grid ``scale`` (per channel on ``axis``), or None when it is not
    exactly on it (the lowering changed the weights: a folded batch norm, a grouped conv split)."""
    channels = data.shape[axis]
    if scale.size not in (1, channels):
        return None
    shape = [1] * data.ndim
    shape[axis] = -1
    s = np.broadcast_to(scale.astype(np.float32), (channels,)).reshape(shape)
    with np.errstate(all="ignore"):
        q = np.round(data.astype(np.float64) / s)
    if not np.all(np.isfinite(q)) or np.abs(q).max(initial=0) > 127:
        return None
    if np.max(np.abs(q * s - data), initial=0) > 1e-6 * max(1e-30, float(np.abs(data).max(initial=0))):
        return None
    return q.astype(np.int8)
