"""Fold per-channel constant MUL / ADD (an inference BatchNormalization, a scale layer) into the weights and
bias of the convolution or fully-connected op that feeds it.

Runs on the IR after ``optimize_layout`` (the MUL/ADD then sit in NHWC next to the conv, their constants
shaped [1, 1, 1, C]) and before ``fuse_activations`` (a folded op must not carry an activation yet).
"""
from __future__ import annotations

import numpy as np

from .ir import Graph, Op
from .layout import onnx_name

# opcode -> (axis of the output channel in the weights, index of the bias input)
_HOSTS = {"CONV_2D": (0, 2), "DEPTHWISE_CONV_2D": (3, 2), "FULLY_CONNECTED": (0, 2), "TRANSPOSE_CONV": (0, 3)}


def fold_affine(graph: Graph, weights: bool = True, rounded=frozenset()) -> int:
    """Fold MUL/ADD by per-output-channel constants into the producing conv / FC; return how many.
    ``weights=False``: only ADDs (into the bias), for a quantized model whose weights are on its own grids.
    ``rounded``: the (ONNX) tensors a quantized model rounds. A constant applied in float to one of them,
    whose own result is not rounded (onnxruntime's QDQ MatMul, then the bias added in float), is not
    folded: the fold would move the model's rounding after the bias, onto another grid."""
    folded = 0
    changed = True
    while changed:
        changed = False
        users, prod = graph.consumers(), graph.producers()
        for op in list(graph.ops):
            host, vec = _match(graph, op, users, prod)
            if host is None or (op.opcode == "MUL" and not weights) or _keeps_rounding(op, host, rounded):
                continue
            _fold(graph, host, op, vec)
            folded += 1
            changed = True
            break
    graph.prune()
    return folded


def _keeps_rounding(op: Op, host: Op, rounded) -> bool:
    """Whether folding ``op`` into ``host`` would drop a rounding the quantized model does between them."""
    return onnx_name(host.outputs[0]) in rounded and onnx_name(op.outputs[0]) not in rounded


def _match(graph: Graph, op: Op, users, prod):
    """(host op, per-channel vector) when ``op`` is a foldable MUL/ADD of the host's only output use."""
    if op.opcode not in ("MUL", "ADD") or getattr(op.options, "fusedActivationFunction", 0):
        return None, None
    for data, other in ((0, 1), (1, 0)):
        src, const = op.inputs[data], graph.tensors[op.inputs[other]]
        host = prod.get(src)
        if host is None or host.opcode not in _HOSTS or const.data is None:
            continue
        if len(users.get(src, [])) != 1 or src in graph.outputs or len(host.outputs) != 1:
            continue
        if getattr(host.options, "fusedActivationFunction", 0) or graph.tensors[src].dtype != np.float32:
            continue
        w = graph.tensors[host.inputs[1]]
        bias_at = _HOSTS[host.opcode][1]
        b = host.inputs[bias_at] if bias_at < len(host.inputs) else None
        if w.data is None or w.quant is not None or (b is not None and graph.tensors[b].data is None):
            continue
        vec = _channel_vector(const.data, graph.tensors[src].shape, graph.tensors[op.outputs[0]].shape)
        if vec is not None:
            return host, vec
    return None, None


def _channel_vector(value: np.ndarray, src_shape, out_shape) -> np.ndarray | None:
    """The constant as one value per output channel (last axis), or None when it varies elsewhere."""
    if tuple(src_shape) != tuple(out_shape) or value.ndim > len(src_shape):
        return None
    if any(d != 1 for d in value.shape[:-1]) or (value.ndim and value.shape[-1] not in (1, src_shape[-1])):
        return None
    return np.broadcast_to(value.reshape(-1).astype(np.float64), (src_shape[-1],))


def _fold(graph: Graph, host: Op, op: Op, vec: np.ndarray) -> None:
    axis, bias_at = _HOSTS[host.opcode]
    channels = len(vec)
    b_name = host.inputs[bias_at] if bias_at < len(host.inputs) else None
    bias = graph.tensors[b_name].data.astype(np.float64) if b_name else np.zeros(channels)
    if op.opcode == "MUL":
        w = graph.tensors[host.inputs[1]].data.astype(np.float64)
        shape = [1] * w.ndim
        shape[axis] = channels
        host.inputs[1] = graph.const((w * vec.reshape(shape)).astype(np.float32), "weights")
        bias = bias * vec
    else:
        bias = bias + vec
    while len(host.inputs) <= bias_at:
        host.inputs.append(None)
    host.inputs[bias_at] = graph.const(bias.astype(np.float32), "bias")
    host.outputs[0] = op.outputs[0]
    graph.ops.remove(op)
