"""ONNX shape inference run on a light copy of the model (big weights stand in as typed inputs)."""
from __future__ import annotations

import onnx
from onnx import ModelProto

from edgepack.model.graphutil import has_subgraph
from edgepack.model.read import tensor_nbytes

KEEP_BYTES = 4096  # initializers up to this size stay, so data propagation sees shape-like constants


def skeleton(model: ModelProto) -> ModelProto:
    """A copy without large initializer data: each big weight becomes a graph input of its type.

    Keeps shape inference and the checker fast and below protobuf's 2 GB limit.
    """
    src = model.graph
    graph = onnx.GraphProto(name=src.name)
    graph.node.extend(src.node)
    graph.input.extend(src.input)
    graph.output.extend(src.output)
    graph.value_info.extend(src.value_info)
    graph.sparse_initializer.extend(src.sparse_initializer)
    light = ModelProto(ir_version=model.ir_version, graph=graph)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    light.ir_version = max(light.ir_version, 4)
    inputs = {vi.name for vi in light.graph.input}
    for tensor in model.graph.initializer:
        if tensor_nbytes(tensor) <= KEEP_BYTES:
            light.graph.initializer.append(tensor)
        elif tensor.name not in inputs:
            light.graph.input.append(
                onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return light


def infer_shapes(model: ModelProto) -> None:
    """Run ``onnx.shape_inference`` (data_prop=True, non-strict) and store results in ``model``."""
    light = skeleton(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - any inference failure just leaves shapes unknown
        return  # leave shapes unknown; the onnxruntime pass records what is missing
    graph = model.graph
    names = {t.name for t in graph.initializer} | {vi.name for vi in graph.input}
    del graph.value_info[:]
    graph.value_info.extend(vi for vi in inferred.graph.value_info if vi.name not in names)
    for out, new in zip(graph.output, inferred.graph.output):
        out.type.CopyFrom(new.type)
    for node, new in zip(graph.node, inferred.graph.node):
        if has_subgraph(node):
            node.CopyFrom(new)
