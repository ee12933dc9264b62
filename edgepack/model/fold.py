"""Constant folding: nodes whose inputs are all constants become initializers.

Covers Constant nodes, Shape/Size of statically shaped tensors, and any deterministic node whose
inputs are initializers (ConstantOfShape, Cast, Reshape, Concat, Gather, Slice, Range, Expand, ...).
Random ops, Quantize/DequantizeLinear (kept so QDQ models stay quantized), nodes with subgraphs
and nodes producing graph outputs are left alone, as are results larger than the size limits.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, TensorProto, numpy_helper

from edgepack.model.evaluate import evaluate_node
from edgepack.model.graphutil import (delete_indices, has_subgraph, keep_only, opsets, static_shape,
                                      value_infos)

MAX_FOLD_BYTES = 64 * 2**20
CACHE_BYTES = 2**20
MAX_WEIGHT_BYTES = 2**30  # ConstantOfShape: exporters (Caffe2) build whole weights this way
NEVER_FOLD = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
})


@dataclass
class _Constants:
    tensors: dict[str, TensorProto]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def array(self, name: str) -> np.ndarray:
        if name in self.arrays:
            return self.arrays[name]
        value = numpy_helper.to_array(self.tensors[name])
        self.remember(name, value)
        return value

    def remember(self, name: str, value: np.ndarray) -> None:
        if value.nbytes <= CACHE_BYTES:
            self.arrays[name] = value


def fold_constants(model: ModelProto) -> int:
    """Fold every foldable node of the main graph in one topological pass; returns how many."""
    graph = model.graph
    consts = _Constants({t.name: t for t in graph.initializer})
    known = value_infos(graph)
    outputs = {o.name for o in graph.output}
    domains = opsets(model)
    folded: list[int] = []
    for index, node in enumerate(graph.node):
        tensors = None
        if not (outputs & set(node.output)):
            tensors = _fold(node, consts, known, domains)
        if tensors is None:
            continue
        for item in tensors:
            tensor = graph.initializer.add()
            _store(tensor, item)
            consts.tensors[tensor.name] = tensor
        folded.append(index)
    delete_indices(graph.node, folded)
    keep_only(graph.value_info, lambda vi: vi.name not in consts.tensors)
    return len(folded)


def _store(tensor: TensorProto, item: TensorProto | tuple[str, np.ndarray | bytes, int, list[int]]) -> None:
    if isinstance(item, TensorProto):
        tensor.CopyFrom(item)
        return
    name, data, elem, dims = item
    tensor.name = name
    tensor.data_type = elem
    tensor.dims.extend(dims)
    if isinstance(data, bytes):
        tensor.raw_data = data
    elif data.dtype.kind in _PLAIN_KINDS:
        tensor.raw_data = np.ascontiguousarray(data, data.dtype.newbyteorder("<")).tobytes()
    else:  # strings and ml_dtypes (bfloat16, float8, int4 packing): let onnx encode them
        tensor.CopyFrom(numpy_helper.from_array(data, name))


def _raw(name: str, value: np.ndarray) -> tuple[str, np.ndarray, int, list[int]]:
    return name, value, onnx.helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)


_PLAIN_KINDS = "biufc"  # numpy kinds whose bytes are ONNX raw_data as they are
_Folded = list  # of TensorProto or (name, ndarray | bytes, elem_type, dims)


def _fold(node: NodeProto, consts: _Constants, known: dict, domains: dict[str, int]) -> _Folded | None:
    if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
        return _constant(node, domains)
    if node.op_type in ("Shape", "Size") and node.domain in ("", "ai.onnx") and node.input[0] in known:
        shape = static_shape(known[node.input[0]])
        if shape is not None:
            return [_raw(node.output[0], _shape_value(node, shape))]
    inputs = [n for n in node.input if n]
    if (node.op_type in NEVER_FOLD or has_subgraph(node) or not inputs
            or not all(n in consts.tensors for n in inputs)):
        return None
    if node.op_type == "ConstantOfShape" and node.domain in ("", "ai.onnx"):
        filled = _constant_of_shape(node, consts)
        if filled is not None:
            return filled
    if _predicted_bytes(node, known) > MAX_FOLD_BYTES:
        return None
    expected = [_elem_type(known.get(o)) for o in node.output]
    values = evaluate_node(node, {n: consts.array(n) for n in inputs}, domains, expected)
    if values is None or sum(v.nbytes for v in values) > MAX_FOLD_BYTES:
        return None
    result = []
    for name, value in zip(node.output, values):
        if name:
            consts.remember(name, value)
            result.append(_raw(name, value))
    return result


def _constant_of_shape(node: NodeProto, consts: _Constants) -> _Folded | None:
    """Fill bytes directly: Caffe2 exports build every weight this way, some of them 400 MB."""
    dims = [int(d) for d in consts.array(node.input[0]).reshape(-1)]
    attr = next((a.t for a in node.attribute if a.name == "value"), None)
    fill = numpy_helper.to_array(attr).reshape(-1) if attr is not None else np.zeros(1, np.float32)
    if fill.size != 1 or any(d < 0 for d in dims) or fill.dtype.kind not in _PLAIN_KINDS:
        return None  # the general path evaluates (and size-checks) the odd cases
    count = int(np.prod(dims, dtype=np.int64))
    if count * fill.itemsize > MAX_WEIGHT_BYTES:
        return None
    data = fill.astype(fill.dtype.newbyteorder("<")).tobytes() * count
    return [(node.output[0], data, onnx.helper.np_dtype_to_tensor_dtype(fill.dtype), dims)]


def _constant(node: NodeProto, domains: dict[str, int]) -> list[TensorProto] | None:
    attr = node.attribute[0] if len(node.attribute) == 1 else None
    if attr is not None and attr.name == "value":
        tensor = TensorProto()
        tensor.CopyFrom(attr.t)
        tensor.name = node.output[0]
        return [tensor]
    values = evaluate_node(node, {}, domains, [None])
    return None if values is None else [numpy_helper.from_array(values[0], node.output[0])]


def _shape_value(node: NodeProto, shape: list[int]) -> np.ndarray:
    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    attrs = {a.name: a.i for a in node.attribute}
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    return np.array(shape[start:end], dtype=np.int64)


def _elem_type(vi: onnx.ValueInfoProto | None) -> int | None:
    if vi is None or not vi.type.HasField("tensor_type") or vi.type.tensor_type.elem_type == 0:
        return None
    return vi.type.tensor_type.elem_type


def _predicted_bytes(node: NodeProto, known: dict) -> int:
    """Output size from inferred shapes; 0 when unknown (the result is checked after evaluation)."""
    total = 0
    for name in node.output:
        vi = known.get(name)
        shape = static_shape(vi) if vi is not None else None
        elem = _elem_type(vi)
        if shape is not None and elem is not None:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(elem).itemsize
            total += int(np.prod(shape, dtype=np.int64)) * itemsize
    return total
