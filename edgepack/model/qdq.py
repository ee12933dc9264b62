"""Quantized (QDQ) ONNX models as a float model plus the quantization the model carries.

``dequantize(model)`` returns a float copy and a ``QdqInfo``:

* ``DequantizeLinear`` of a constant (a weight, a bias, a ``QuantizeLinear`` of a constant) becomes a float
  initializer holding exactly the values onnxruntime computes; the integer grid, scale(s) and axis are kept
  in ``info.weights`` (keyed by the float initializer's name).
* A ``QuantizeLinear`` -> ``DequantizeLinear`` pair on an activation is removed (the consumers read the float
  tensor): the model then runs in float. Its scale and zero point are kept in ``info.activations`` (keyed
  by the float tensor's name), so a target can quantize with the model's own parameters.

What cannot be dequantized this way (a Q or DQ left over: a quantized graph input or output, a DQ whose
parameters differ from its Q's) stays in the graph and is listed in ``info.left``; the target's preflight
names it. QOperator models are first rewritten to QDQ by ``edgepack.model.qoperator``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
from onnx import ModelProto, NodeProto, TensorProto, helper, numpy_helper

from edgepack.model.evaluate import evaluate_node
from edgepack.model.graphutil import delete_indices, keep_only, opsets, rename_uses
from edgepack.model.prune import remove_aliases, remove_dead

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
QDQ_DOMAINS = ("", "ai.onnx", "com.microsoft")      # onnxruntime writes 16-bit Q/DQ in its own domain
_BOUNDS = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
           "int4": (-8, 7), "uint4": (0, 15), "int32": (-2**31, 2**31 - 1)}


@dataclass
class WeightQuant:
    """How the model quantized one constant: ``grid * scale`` (broadcast on ``axis``) is its float value."""
    grid: np.ndarray          # int64: the stored integers minus the zero point
    scale: np.ndarray         # float32, one value (per tensor) or one per slice along ``axis``
    axis: int | None          # per-channel axis (None: per tensor)
    dtype: str                # the stored type: int8, uint8, int4, int16, int32...
    blocked: bool = False     # blocked quantization (opset 21 block_size)


@dataclass
class ActQuant:
    """An activation's Q/DQ parameters."""
    scale: float
    zero_point: int
    dtype: str
    per_axis: bool = False

    def range(self) -> tuple[float, float]:
        """The float interval the quantized type covers with these parameters."""
        lo, hi = _BOUNDS.get(self.dtype, (0, 0))
        return (lo - self.zero_point) * self.scale, (hi - self.zero_point) * self.scale


@dataclass
class QdqInfo:
    weights: dict[str, WeightQuant] = field(default_factory=dict)
    activations: dict[str, ActQuant] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)     # Q/DQ nodes that could not be removed
    counts: dict = field(default_factory=dict)


def eight_bit_weights(info: QdqInfo) -> list[WeightQuant]:
    """The 8-bit weights of rank >= 2 a quantized model carried (the ones a target can keep on their grid)."""
    return [w for w in info.weights.values() if w.dtype in ("int8", "uint8") and w.grid.ndim >= 2]


def grid_key(grid: np.ndarray) -> tuple:
    """A hashable identity of an integer grid (shape and values), to find the same grid in another model."""
    return grid.shape, np.ascontiguousarray(grid, dtype=np.int64).tobytes()


def is_quantized(model: ModelProto) -> bool:
    """Whether ``model`` holds Q/DQ nodes or QOperator ops (quantized ONNX)."""
    from edgepack.model.qoperator import QOPERATORS
    return any(n.op_type in QDQ_OPS or n.op_type in QOPERATORS for n in model.graph.node)


def dequantize(model: ModelProto) -> tuple[ModelProto, QdqInfo]:
    """A float copy of the QDQ (or QOperator) ``model`` and the quantization it carried."""
    from edgepack.model.qoperator import expand_qoperators
    model = copy.deepcopy(model)
    expanded = expand_qoperators(model)
    info = QdqInfo()
    folded = _fold_constant_dqs(model, info)
    pairs = _remove_pairs(model, info)
    remove_dead(model)
    info.left = [n.name for n in model.graph.node if n.op_type in QDQ_OPS]
    info.counts = {"qoperators_expanded": expanded, "constants_dequantized": folded,
                   "activation_pairs_removed": pairs, "left": len(info.left)}
    return model, info


def _const(model: ModelProto, consts: dict, name: str) -> np.ndarray | None:
    return numpy_helper.to_array(consts[name]) if name in consts else None


def _fold_constant_dqs(model: ModelProto, info: QdqInfo) -> int:
    """Q and DQ nodes on constants become initializers (in graph order: a Q's result feeds its DQ)."""
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    domains = dict(opsets(model))
    domains[""] = max(domains.get("", 13), 13)
    done = []
    for index, node in enumerate(graph.node):
        if node.op_type not in QDQ_OPS or node.domain not in QDQ_DOMAINS:
            continue
        if not all(n in consts for n in node.input if n):
            continue
        arrays = {n: numpy_helper.to_array(consts[n]) for n in node.input if n}
        values = evaluate_node(node, arrays, domains, [None])
        if values is None:
            continue
        tensor = numpy_helper.from_array(np.asarray(values[0]), node.output[0])
        graph.initializer.append(tensor)
        consts[tensor.name] = tensor
        if node.op_type == "DequantizeLinear":
            info.weights[node.output[0]] = weight_quant(node, arrays)
        done.append(index)
    delete_indices(graph.node, done)
    keep_only(graph.value_info, lambda vi: vi.name not in consts)
    used = {n for node in graph.node for n in node.input} | {o.name for o in graph.output}
    keep_only(graph.initializer, lambda t: t.name in used)
    return len(done)


def weight_quant(node: NodeProto, arrays: dict[str, np.ndarray]) -> WeightQuant:
    """The ``WeightQuant`` of a DequantizeLinear ``node`` whose inputs are the constants ``arrays`` (by name)."""
    x = arrays[node.input[0]]
    scale = np.asarray(arrays[node.input[1]], np.float32)
    zp = arrays[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros_like(scale, np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    blocked = attrs.get("block_size", 0) > 0
    axis = attrs.get("axis", 1) % max(1, x.ndim) if scale.size > 1 and not blocked else None
    grid = x.astype(np.int64)
    if not blocked:
        shape = [1] * x.ndim
        if axis is not None:
            shape[axis] = -1
        grid = grid - np.asarray(zp).astype(np.int64).reshape(shape if axis is not None else ())
    return WeightQuant(grid, scale.reshape(-1), axis, str(x.dtype), blocked)


def _remove_pairs(model: ModelProto, info: QdqInfo) -> int:
    """Q -> DQ pairs on activations (same parameters) are removed; the DQ outputs' readers read the input."""
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    readers: dict[str, list[NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    drop: set[int] = set()
    count = 0
    for q in graph.node:
        if q.op_type != "QuantizeLinear" or q.output[0] in outputs:
            continue
        dqs = readers.get(q.output[0], [])
        params = _params(q, consts)
        # a Q nobody reads (its readers moved in front of it, see qoperator.hoist_transparent) still says
        # how the model quantized its input
        if params is None or any(d.op_type != "DequantizeLinear" or _params(d, consts) != params for d in dqs):
            continue
        x = q.input[0]
        info.activations[x] = act = _act_quant(q, consts)
        clamps = act.zero_point == _BOUNDS.get(act.dtype, (None,))[0] and not act.per_axis
        if clamps and not _non_negative(graph, x):
            x = _relu(graph, q, x)          # the Q clamped at zero (a Relu the quantizer folded into it)
            info.activations[x] = act
        else:
            drop.add(id(q))
        for dq in dqs:
            if dq.output[0] in outputs:
                info.activations[dq.output[0]] = info.activations[x]
                dq.op_type, dq.domain, dq.input[:] = "Identity", "", [x]     # a graph output keeps its name
                del dq.attribute[:]
                continue
            rename_uses(graph, dq.output[0], x)
            drop.add(id(dq))
        count += 1
    delete_indices(graph.node, [i for i, n in enumerate(graph.node) if id(n) in drop])
    _drop_identities(model)
    return count


_NON_NEGATIVE = {"Relu", "Sigmoid", "Softmax", "Abs", "Exp", "Sqrt", "HardSigmoid", "Softplus"}


def _non_negative(graph, name: str) -> bool:
    return any(name in n.output and n.op_type in _NON_NEGATIVE for n in graph.node)


def _relu(graph, q: NodeProto, x: str) -> str:
    """Relu(x) placed where the Q node is; returns its output's name."""
    from edgepack.model.qoperator import typed_like
    out = f"{x}/relu"
    typed_like(graph, out, x, TensorProto.FLOAT)
    relu = helper.make_node("Relu", [x], [out], name=f"{q.name or x}/relu")
    q.op_type, q.domain, q.input[:], q.output[:] = relu.op_type, "", relu.input, relu.output
    del q.attribute[:]
    q.name = relu.name
    return out


def _params(node: NodeProto, consts: dict):
    """(scale bytes, zero point bytes, zero point type, axis) of a Q/DQ node with constant parameters."""
    if node.input[1] not in consts or (len(node.input) > 2 and node.input[2] and node.input[2] not in consts):
        return None
    scale = numpy_helper.to_array(consts[node.input[1]])
    zp = numpy_helper.to_array(consts[node.input[2]]) if len(node.input) > 2 and node.input[2] else None
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1) if scale.size > 1 else None
    return (scale.astype(np.float32).tobytes(), None if zp is None else (zp.dtype.str, zp.tobytes()), axis)


def _act_quant(q: NodeProto, consts: dict) -> ActQuant:
    scale = numpy_helper.to_array(consts[q.input[1]]).astype(np.float32)
    has_zp = len(q.input) > 2 and q.input[2]
    zp = numpy_helper.to_array(consts[q.input[2]]) if has_zp else np.zeros((), np.uint8)
    dtype = _out_type(q, zp)
    return ActQuant(float(scale.reshape(-1)[0]), int(np.asarray(zp).reshape(-1)[0]), dtype, scale.size > 1)


def _out_type(q: NodeProto, zp: np.ndarray) -> str:
    attr = next((a.i for a in q.attribute if a.name == "output_dtype"), 0)
    if attr:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(attr))) if attr not in (
            TensorProto.INT4, TensorProto.UINT4) else ("int4" if attr == TensorProto.INT4 else "uint4")
    return str(zp.dtype)


def _drop_identities(model: ModelProto) -> None:
    if any(n.op_type == "Identity" for n in model.graph.node):
        remove_aliases(model)

