"""Bias correction (Nagel et al. 2019, section 4.2), on the ONNX graph, for int8-weight targets.

Rounding a layer's weights to symmetric per-channel int8 (``stats.fake_quant_weight``: what the cpu
target stores, and what the Qualcomm target's per-channel weights are) shifts the mean of each output
channel by ``dW . E[x]`` (``dW``: quantized minus float weights, ``E[x]``: the mean of the layer's input
per channel over the calibration samples). Subtracting that from the bias removes the shift; the float
function moves by the same small amount (the quantized one is what it is fitted for).

Conv (any group; the shift is the conv of the mean input map with ``dW``, so padding counts), and MatMul / Gemm with constant [K, N] weights
whose bias is a constant Add right after them (or Gemm's C).
"""
from __future__ import annotations

import numpy as np
import onnx

from .graph import Graph, attr, conv_weights, fold_batchnorm, set_conv
from ..model.ort import run_model
from .stats import fake_quant_weight, mean_maps


def _conv_shift(node: onnx.NodeProto, w: np.ndarray, mean_x: np.ndarray) -> np.ndarray:
    """Mean over positions of ``conv(E[x], dW)`` per output channel: exact (the conv is linear), borders
    and padding included, so small late feature maps are not misjudged."""
    dw = fake_quant_weight(w, 0) - w
    conv = onnx.helper.make_node("Conv", ["x", "w"], ["y"])
    conv.attribute.extend(node.attribute)
    graph = onnx.helper.make_graph(
        [conv], "shift", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(mean_x.shape))],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(dw, "w")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    (y,) = run_model(model, {"x": mean_x})
    return y.mean(axis=tuple(i for i in range(y.ndim) if i != 1))


def _fc_bias(g: Graph, node: onnx.NodeProto) -> tuple[np.ndarray, str] | None:
    """(weight [K, N], bias initializer name) of a MatMul + Add(const [N]) or a Gemm with C."""
    if len(node.input) < 2 or not g.private(node.input[1]):
        return None
    w = g.const(node.input[1])
    if w is None or w.ndim != 2:
        return None
    if node.op_type == "Gemm":
        if attr(node, "transA", 0) or len(node.input) < 3 or attr(node, "alpha", 1.0) != 1.0:
            return None
        bias = node.input[2]
        w = w.T if attr(node, "transB", 0) else w
    else:
        add = g.only_user(node.output[0])
        if add is None or add.op_type != "Add":
            return None
        bias = add.input[1] if add.input[0] == node.output[0] else add.input[0]
    b = g.const(bias)
    if b is None or not g.private(bias) or b.size != w.shape[1] or (node.op_type == "Gemm" and
                                                                   attr(node, "beta", 1.0) != 1.0):
        return None
    return w, bias


def layers(g: Graph) -> list[tuple[onnx.NodeProto, int]]:
    """(layer, channel axis of its input) for every layer whose bias can be corrected."""
    out = []
    for node in g.g.node:
        if node.op_type == "Conv" and conv_weights(g, node) is not None:
            out.append((node, 1))
        elif node.op_type in ("MatMul", "Gemm") and _fc_bias(g, node) is not None:
            out.append((node, -1))
    return out


def correct(model: onnx.ModelProto, samples: list[dict]) -> dict:
    """Subtract each layer's expected int8-weight error from its bias; edits ``model`` in place."""
    folded = fold_batchnorm(model)
    g = Graph(model)
    found = layers(g)
    means = mean_maps(model, samples, sorted({n.input[0] for n, _ in found}))
    shifts = []
    for node, _ in found:
        mu = means[node.input[0]]
        if node.op_type == "Conv":
            w, b = conv_weights(g, node)
            shift = _conv_shift(node, w, mu)
            set_conv(g, node, w, b - shift)
        else:
            w, bias = _fc_bias(g, node)
            shift = mu.reshape(-1, mu.shape[-1]).mean(axis=0) @ (fake_quant_weight(w, 1) - w)
            g.set(bias, g.const(bias) - shift.reshape(g.const(bias).shape))
        shifts.append(float(np.abs(shift).max()))
    return {"layers": len(found), "batchnorm_folded": folded,
            "max_shift": round(max(shifts), 6) if shifts else 0.0}
