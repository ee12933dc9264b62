"""Peephole passes on the IR after layout optimization."""
from __future__ import annotations

import hashlib

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from .ir import Graph
from .ops.common import tf_same_pads

_FUSABLE_ACT = {"RELU": fb.ActivationFunctionType.RELU, "RELU6": fb.ActivationFunctionType.RELU6,
                "RELU_N1_TO_1": fb.ActivationFunctionType.RELU_N1_TO_1}
# CONCATENATION is not a host: its schema has the field, but the builtin kernel refuses any activation at
# prepare time (only XNNPACK accepted it, so models failed wherever XNNPACK did not take the node).
_HOSTS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV",
          "AVERAGE_POOL_2D", "MAX_POOL_2D", "TRANSPOSE_CONV"}


def fuse_activations(graph: Graph) -> int:
    """Fold RELU/RELU6/RELU_N1_TO_1 into the op producing their input (TFLite's fused activation)."""
    fused = 0
    users = graph.consumers()
    prod = graph.producers()
    for op in list(graph.ops):
        act = _FUSABLE_ACT.get(op.opcode)
        src = op.inputs[0] if act is not None else None
        host = prod.get(src) if src is not None else None
        if host is None or host.opcode not in _HOSTS or host.options is None:
            continue
        if len(users.get(src, [])) != 1 or src in graph.outputs:
            continue
        if getattr(host.options, "fusedActivationFunction", None) != fb.ActivationFunctionType.NONE:
            continue
        if graph.tensors[src].dtype.kind != "f":
            continue
        host.options.fusedActivationFunction = act
        host.outputs[0] = op.outputs[0]
        graph.ops.remove(op)
        prod[op.outputs[0]] = host
        fused += 1
    graph.prune()
    return fused


def dedupe_constants(graph: Graph) -> int:
    """Merge constant tensors with identical dtype, shape and bytes (shared weights are stored once)."""
    seen: dict[tuple, str] = {}
    merged = 0
    for name, t in list(graph.tensors.items()):
        if t.data is None or t.quant is not None or name in graph.outputs:
            continue
        key = (t.dtype.str, t.shape, hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).digest())
        keep = seen.setdefault(key, name)
        if keep != name:
            graph.replace_uses(name, keep)
            merged += 1
    graph.prune()
    return merged


def fold_pad_into_conv(graph: Graph) -> int:
    """PAD (zeros, spatial only) feeding a VALID CONV_2D / DEPTHWISE_CONV_2D becomes the conv's SAME padding
    when the pads are exactly those SAME applies."""
    users = graph.consumers()
    prod = graph.producers()
    folded = 0
    for conv in list(graph.ops):
        if conv.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D") or conv.options.padding != fb.Padding.VALID:
            continue
        pad = prod.get(conv.inputs[0])
        if pad is None or pad.opcode != "PAD" or len(users.get(conv.inputs[0], [])) != 1:
            continue
        spec = graph.tensors[pad.inputs[1]].data
        src = graph.tensors[pad.inputs[0]]
        if spec is None or len(src.shape) != 4 or spec[0].any() or spec[3].any():
            continue
        o = conv.options
        w = graph.tensors[conv.inputs[1]].shape
        kernel, strides = (w[1], w[2]), (o.strideH, o.strideW)
        dil = (o.dilationHFactor or 1, o.dilationWFactor or 1)
        if [tuple(int(v) for v in spec[i]) for i in (1, 2)] != tf_same_pads(src.shape[1:3], kernel, strides, dil):
            continue
        conv.inputs[0] = pad.inputs[0]
        o.padding = fb.Padding.SAME
        folded += 1
    graph.prune()
    return folded


def remove_identity_slices(graph: Graph) -> int:
    """Drop STRIDED_SLICE / SLICE ops that keep the whole tensor."""
    removed = 0
    for op in list(graph.ops):
        if op.opcode not in ("STRIDED_SLICE", "SLICE") or op.outputs[0] in graph.outputs:
            continue
        src, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        begin = graph.tensors[op.inputs[1]].data
        strides = graph.tensors[op.inputs[3]].data if op.opcode == "STRIDED_SLICE" else None
        if src.shape != out.shape or begin is None or begin.any() or (strides is not None and (strides != 1).any()):
            continue
        graph.replace_uses(op.outputs[0], op.inputs[0])
        graph.ops.remove(op)
        removed += 1
    graph.prune()
    return removed


def fold_transpose_into_fc(graph: Graph) -> int:
    """TRANSPOSE -> RESHAPE(flatten) -> FULLY_CONNECTED with constant weights: permute the weight columns
    instead, so a CNN flattening its NCHW features before the classifier keeps NHWC with no TRANSPOSE."""
    users = graph.consumers()
    prod = graph.producers()
    folded = 0
    for fc in list(graph.ops):
        if fc.opcode != "FULLY_CONNECTED" or graph.tensors[fc.inputs[1]].data is None:
            continue
        rs = prod.get(fc.inputs[0])
        tr = prod.get(rs.inputs[0]) if rs is not None and rs.opcode == "RESHAPE" else None
        if tr is None or tr.opcode != "TRANSPOSE" or graph.tensors[tr.inputs[1]].data is None:
            continue
        if len(users.get(rs.outputs[0], [])) != 1 or len(users.get(tr.outputs[0], [])) != 1:
            continue
        perm = [int(p) for p in graph.tensors[tr.inputs[1]].data]
        src, flat = graph.tensors[tr.inputs[0]], graph.tensors[rs.outputs[0]]
        w = graph.tensors[fc.inputs[1]].data
        k = int(np.prod(src.shape[1:]))
        if perm[0] != 0 or len(flat.shape) != 2 or flat.shape != (src.shape[0], k) or w.shape[1] != k:
            continue
        ids = np.transpose(np.arange(k).reshape((1,) + src.shape[1:]), perm).reshape(-1)
        w2 = np.empty_like(w)
        w2[:, ids] = w
        fc.inputs[1] = graph.const(w2, "weights")
        rs.inputs[0] = tr.inputs[0]
        graph.ops.remove(tr)
        folded += 1
    graph.prune()
    return folded

