"""Deterministic synthetic inputs for a model with static input shapes."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import ModelProto, TensorProto

from edgepack.errors import DynamicShapeError, ModelError
from edgepack.model.graphutil import static_shape, value_infos
from edgepack.model.shapes import dynamic_input_dims

DEFAULT_INT_HIGH = 10
# (op_type, index input) -> (data input, axis attribute or None for axis 0)
_INDEXING = {
    ("Gather", 1): (0, "axis"),
    ("GatherElements", 1): (0, "axis"),
    ("EmbedLayerNormalization", 0): (2, None),
    ("EmbedLayerNormalization", 1): (4, None),
    ("EmbedLayerNormalization", 8): (3, None),
}
_PASS_THROUGH = {"Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}
_FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE}


def make_inputs(model: ModelProto, n: int = 1, *, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``n`` feed dicts for ``model``; the same ``seed`` always gives the same arrays.

    Floats are standard normal, bools random, integers in [0, rows) when they index a
    Gather/GatherElements/embedding table (directly or through Cast/Reshape/...), else [0, 10).
    """
    dims = dynamic_input_dims(model)
    if dims:
        raise DynamicShapeError(dims)
    weights = {t.name for t in model.graph.initializer}
    specs = [vi for vi in model.graph.input if vi.name not in weights]
    highs = _index_bounds(model)
    rng = np.random.default_rng(seed)
    return [{vi.name: _sample(rng, vi, highs.get(vi.name, DEFAULT_INT_HIGH)) for vi in specs}
            for _ in range(n)]


def _sample(rng: np.random.Generator, vi: onnx.ValueInfoProto, high: int) -> np.ndarray:
    elem = vi.type.tensor_type.elem_type
    shape = tuple(static_shape(vi) or ())
    if elem in _FLOATS:
        return rng.standard_normal(shape).astype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    if elem == TensorProto.BOOL:
        return rng.integers(0, 2, size=shape).astype(bool)
    if elem == TensorProto.STRING:
        return np.array(rng.choice(["edge", "pack"], size=shape), dtype=object)
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)) if elem else None
    if dtype is None or dtype.kind not in "iu":
        raise ModelError(f"input '{vi.name}' has element type "
                         f"{onnx.TensorProto.DataType.Name(elem)}, which make_inputs cannot generate",
                         hint="feed real inputs instead of synthetic ones")
    high = max(1, min(high, int(np.iinfo(dtype).max) + 1))
    return rng.integers(0, high, size=shape, dtype=dtype)


def _index_bounds(model: ModelProto) -> dict[str, int]:
    """Exclusive upper bound for integer inputs that index a table, keyed by input name."""
    graph = model.graph
    known = value_infos(graph)
    readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, i))
    bounds: dict[str, int] = {}
    for vi in graph.input:
        found = _bounds_from(vi.name, readers, known, depth=0)
        if found:
            bounds[vi.name] = min(found)
    return bounds


def _bounds_from(name: str, readers: dict, known: dict, depth: int) -> list[int]:
    found: list[int] = []
    for node, index in readers.get(name, []):
        if node.op_type in _PASS_THROUGH and index == 0 and depth < 8:
            found += _bounds_from(node.output[0], readers, known, depth + 1)
            continue
        rule = _INDEXING.get((node.op_type, index))
        if rule is None or len(node.input) <= rule[0] or node.input[rule[0]] not in known:
            continue
        shape = static_shape(known[node.input[rule[0]]])
        axis = next((a.i for a in node.attribute if a.name == rule[1]), 0) if rule[1] else 0
        if shape and -len(shape) <= axis < len(shape) and shape[axis] > 0:
            found.append(shape[axis])
    return found
