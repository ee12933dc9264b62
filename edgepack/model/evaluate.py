"""Evaluate one ONNX node on constant inputs: onnx's reference evaluator, then onnxruntime."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
from onnx import NodeProto
from onnx.reference import ReferenceEvaluator

from edgepack.model.ort import run_model


def evaluate_node(node: NodeProto, feeds: dict[str, np.ndarray], opsets: dict[str, int],
                  expected: list[int | None]) -> list[np.ndarray] | None:
    """Outputs of ``node`` as arrays, or None when neither evaluator gives a trustworthy answer.

    ``expected`` holds the ONNX elem_type each output should have (None where unknown); results
    of another dtype are rejected.
    """
    for run in (_reference, _onnxruntime):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                values = run(node, feeds, opsets)
        except Exception:  # any evaluator failure just means "do not fold this node"
            continue
        if values is not None and _plausible(values, node, expected):
            return [np.asarray(v) for v in values]
    return None


def _reference(node: NodeProto, feeds: dict[str, np.ndarray], opsets: dict[str, int]) -> list:
    return ReferenceEvaluator(node, opsets=opsets).run(None, feeds)


def _onnxruntime(node: NodeProto, feeds: dict[str, np.ndarray], opsets: dict[str, int]) -> list:
    inputs = [onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(a.dtype),
                                                 list(a.shape)) for name, a in feeds.items()]
    outputs = [onnx.ValueInfoProto(name=o) for o in node.output if o]
    graph = onnx.helper.make_graph([node], "fold", inputs, outputs)
    imports = [onnx.helper.make_opsetid(d, v) for d, v in opsets.items()]
    model = onnx.helper.make_model(graph, opset_imports=imports, ir_version=8)
    values = run_model(model, feeds)
    it = iter(values)
    return [next(it) if o else None for o in node.output]


def _plausible(values: list, node: NodeProto, expected: list[int | None]) -> bool:
    if len(values) != len(node.output):
        return False
    for name, value, elem in zip(node.output, values, expected):
        if not name:
            continue
        if not isinstance(value, (np.ndarray, np.generic)):
            return False  # sequences, maps and optionals stay as they are
        if elem is not None and elem != onnx.helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype):
            return False
    return True
