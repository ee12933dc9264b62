"""QOperator ONNX (onnxruntime's ``QLinear*`` ops) rewritten as QDQ: each quantized op becomes
DequantizeLinear of its quantized inputs -> the float op -> QuantizeLinear of its output, so that
``edgepack.model.qdq.dequantize`` treats both formats alike.

Table rows: op -> (float op, quantized input triples (x, scale, zero point) as input indices, plain inputs,
output (scale, zero point) indices, attributes not copied). QLinearConv's int32 bias (scale x_s * w_s) is
dequantized at once. Ops not in the table (QGemm, ConvInteger, MatMulInteger...) stay and are named by the
target's preflight.
"""
from __future__ import annotations

import numpy as np
from onnx import ModelProto, NodeProto, TensorProto, helper, numpy_helper

_MS = "com.microsoft"
# (domain, op) -> (float op, [(x, scale, zp) input indices], output (scale, zp) indices, dropped attributes)
TABLE: dict[tuple[str, str], tuple[str, list[tuple[int, int, int]], tuple[int, int], tuple[str, ...]]] = {
    ("", "QLinearConv"): ("Conv", [(0, 1, 2), (3, 4, 5)], (6, 7), ()),
    ("", "QLinearMatMul"): ("MatMul", [(0, 1, 2), (3, 4, 5)], (6, 7), ()),
    (_MS, "QLinearAdd"): ("Add", [(0, 1, 2), (3, 4, 5)], (6, 7), ()),
    (_MS, "QLinearMul"): ("Mul", [(0, 1, 2), (3, 4, 5)], (6, 7), ()),
    (_MS, "QLinearSigmoid"): ("Sigmoid", [(0, 1, 2)], (3, 4), ()),
    (_MS, "QLinearLeakyRelu"): ("LeakyRelu", [(0, 1, 2)], (3, 4), ()),
    (_MS, "QLinearGlobalAveragePool"): ("GlobalAveragePool", [(0, 1, 2)], (3, 4), ("channels_last",)),
    (_MS, "QLinearAveragePool"): ("AveragePool", [(0, 1, 2)], (3, 4), ("channels_last",)),
    (_MS, "QLinearSoftmax"): ("Softmax", [(0, 1, 2)], (3, 4), ("opset",)),
    (_MS, "QGemm"): ("Gemm", [(0, 1, 2), (3, 4, 5)], (7, 8), ()),
}
QOPERATORS = frozenset(op for _, op in TABLE) | {"QLinearConcat", "ConvInteger", "MatMulInteger"}
_BIAS = {"QLinearConv": 8, "QGemm": 6}      # int32 bias input, scale = a_scale * b_scale


def expand_qoperators(model: ModelProto) -> int:
    """Rewrite every table op of ``model`` (in place) as DQ -> float op -> Q; returns how many."""
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    nodes: list[NodeProto] = []
    count = 0
    for node in graph.node:
        row = TABLE.get(("" if node.domain == "ai.onnx" else node.domain, node.op_type))
        if row is None or _channels_last(node) or not _constant_parameters(node, row, consts):
            nodes.append(node)
            continue
        nodes.extend(_expand(graph, node, row, consts))
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count + hoist_transparent(model)


# Ops that commute with quantization (they move or select values, never combine them): QOperator models run
# them on the quantized tensors themselves. Moved in front of the QuantizeLinear that feeds them, they run on
# the float tensor instead, which leaves Q -> DQ pairs for ``qdq`` to remove.
TRANSPARENT = frozenset({"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice",
                         "Gather", "Identity", "DepthToSpace", "SpaceToDepth", "Tile", "Expand"})


def hoist_transparent(model: ModelProto) -> int:
    """T(Q(x)) -> Q(T(x)) for every transparent T reading a QuantizeLinear output; returns how many."""
    graph = model.graph
    moved = 0
    changed = True
    while changed:
        changed = False
        producer = {o: n for n in graph.node for o in n.output}
        for node in graph.node:
            q = producer.get(node.input[0]) if node.input else None
            if node.op_type not in TRANSPARENT or q is None or q.op_type != "QuantizeLinear" or len(node.output) != 1:
                continue
            if node.op_type == "MaxPool" and len(node.output) > 1:
                continue
            out = node.output[0]
            flt = f"{out}/float"
            node.input[0], node.output[0] = q.input[0], flt
            typed_like(graph, flt, out, TensorProto.FLOAT)
            graph.node.append(helper.make_node("QuantizeLinear", [flt] + list(q.input[1:]), [out],
                                               name=f"{node.name or out}/q"))
            for a in q.attribute:
                graph.node[-1].attribute.append(a)
            moved += 1
            changed = True
            break
    if moved:
        _toposort(graph)
    return moved


def typed_like(graph, name: str, like: str, elem: int) -> None:
    """Give ``name`` a value_info with the shape of ``like`` and element type ``elem``."""
    for vi in list(graph.value_info) + list(graph.output) + list(graph.input):
        if vi.name == like and vi.type.HasField("tensor_type"):
            new = graph.value_info.add()
            new.CopyFrom(vi)
            new.name = name
            new.type.tensor_type.elem_type = elem
            return


def _toposort(graph) -> None:
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, order = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(n in ready for n in node.input):
                order.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):       # a cycle or an outer-scope read: keep the remaining order
            order.extend(rest)
            break
        pending = rest
    copies = [NodeProto() for _ in order]
    for c, n in zip(copies, order):
        c.CopyFrom(n)
    del graph.node[:]
    graph.node.extend(copies)


def _constant_parameters(node: NodeProto, row, consts) -> bool:
    """Scales and zero points (and a QLinearConv bias) are initializers, as every quantizer writes them."""
    _, triples, out, _ = row
    wanted = [i for _, s, z in triples for i in (s, z)] + list(out) + [_BIAS.get(node.op_type, 99)]
    return all(node.input[i] in consts for i in wanted if i < len(node.input) and node.input[i])


def _channels_last(node: NodeProto) -> bool:
    return any(a.name == "channels_last" and a.i for a in node.attribute)


def _expand(graph, node: NodeProto, row, consts) -> list[NodeProto]:
    float_op, triples, (ys, yz), dropped = row
    name = node.name or node.output[0]
    out: list[NodeProto] = []
    inputs: list[str] = []
    for k, (x, s, z) in enumerate(triples):
        f = f"{name}/dq{k}"
        typed_like(graph, f, node.input[x], TensorProto.FLOAT)
        out.append(_dq(node, x, s, z, f, weight=k == 1 and float_op in ("Conv", "MatMul", "Gemm"), consts=consts))
        inputs.append(f)
    b = _BIAS.get(node.op_type)
    if b is not None and len(node.input) > b and node.input[b]:
        inputs.append(_bias(graph, node, b, consts))
    y = f"{name}/float"
    typed_like(graph, y, node.output[0], TensorProto.FLOAT)
    attrs = [a for a in node.attribute if a.name not in dropped]
    conv = helper.make_node(float_op, inputs, [y], name=f"{name}/{float_op}")
    conv.attribute.extend(attrs)
    out.append(conv)
    if len(node.input) <= ys or not node.input[ys]:     # QGemm without y_scale: a float output
        conv.output[0] = node.output[0]
        return out
    q_in = [y, node.input[ys]] + ([node.input[yz]] if len(node.input) > yz and node.input[yz] else [])
    out.append(helper.make_node("QuantizeLinear", q_in, [node.output[0]], name=f"{name}/q"))
    return out


def _dq(node: NodeProto, x: int, s: int, z: int, out: str, *, weight: bool, consts) -> NodeProto:
    ins = [node.input[x], node.input[s]] + ([node.input[z]] if len(node.input) > z and node.input[z] else [])
    dq = helper.make_node("DequantizeLinear", ins, [out], name=out)
    scale = consts.get(node.input[s])
    if weight and scale is not None and numpy_helper.to_array(scale).size > 1:
        # per-channel weights: output channels are axis 0 of a Conv weight, the last axis of a MatMul's
        w = consts.get(node.input[x])
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        axis = 0 if node.op_type == "QLinearConv" or trans_b else (len(w.dims) - 1 if w is not None else 1)
        dq.attribute.append(helper.make_attribute("axis", axis))
    return dq


def _bias(graph, node: NodeProto, b: int, consts) -> str:
    """The int32 bias (scale a_scale * b_scale per output channel) as a float initializer."""
    arr = {i: numpy_helper.to_array(consts[node.input[i]]) for i in (1, 4, b)}
    value = arr[b].astype(np.float64) * arr[1].astype(np.float64) * arr[4].astype(np.float64).reshape(-1)
    name = f"{node.name or node.output[0]}/bias"
    graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
    return name
