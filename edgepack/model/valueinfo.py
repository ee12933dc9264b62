"""Step 8 (intermediates): every tensor gets a static shape and dtype, by onnxruntime if need be."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto

from edgepack.errors import ModelError
from edgepack.model.graphutil import is_complete, short_shape
from edgepack.model.inputs import make_inputs
from edgepack.model.ort import run_model
from edgepack.model.read import one_line


def incomplete_values(model: ModelProto) -> list[str]:
    """Node outputs (graph outputs included) lacking a static shape or a known dtype."""
    graph = model.graph
    infos = {vi.name: vi for vi in graph.value_info}
    infos.update({o.name: o for o in graph.output})
    weights = {t.name for t in graph.initializer}
    return [name for node in graph.node for name in node.output
            if name and name not in weights and not (name in infos and is_complete(infos[name]))]


def complete_value_info(model: ModelProto, path: Path) -> list[str]:
    """Record shapes/dtypes that shape inference left unknown from two onnxruntime runs.

    A tensor whose shape differs between the two random inputs is data-dependent and cannot be
    made static: that is an error. Returns the names recorded.
    """
    missing = incomplete_values(model)
    if not missing:
        return []
    observed = _observe(model, missing, path)
    outputs = {o.name: o for o in model.graph.output}
    for name, array in zip(missing, observed):
        if not isinstance(array, np.ndarray):
            continue  # sequences and maps keep whatever type inference found
        new = onnx.helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(array.dtype), list(array.shape))
        if name in outputs:
            outputs[name].type.CopyFrom(new.type)
        else:
            _replace(model.graph, new)
    return missing


def _replace(graph: onnx.GraphProto, new: onnx.ValueInfoProto) -> None:
    for vi in graph.value_info:
        if vi.name == new.name:
            vi.CopyFrom(new)
            return
    graph.value_info.append(new)


def _observe(model: ModelProto, names: list[str], path: Path) -> list:
    graph = model.graph
    existing = {o.name for o in graph.output}
    extra = [n for n in names if n not in existing]
    samples = make_inputs(model, 2)
    graph.output.extend(onnx.ValueInfoProto(name=n) for n in extra)
    try:
        runs = [run_model(model, feeds, names) for feeds in samples]
    except Exception as err:  # onnxruntime raises several unrelated types
        raise ModelError(f"{path}: onnxruntime could not run the model to find the shapes of "
                         f"{len(names)} tensor(s) ({one_line(err)})",
                         hint="check the --input-shape values, or that onnxruntime supports all ops") from err
    finally:
        del graph.output[len(graph.output) - len(extra):]
    varying = [f"'{n}' {short_shape(list(a.shape))} vs {short_shape(list(b.shape))}"
               for n, a, b in zip(names, *runs)
               if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape != b.shape]
    if varying:
        raise ModelError(f"{path}: tensor shapes depend on the input data: " + "; ".join(varying),
                         hint="edge targets need static shapes; remove data-dependent ops "
                              "(NonZero, NonMaxSuppression, ...) from the exported graph")
    return runs[0]
