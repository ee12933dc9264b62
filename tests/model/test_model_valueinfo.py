"""Intermediate shapes: ONNX inference first, onnxruntime for the rest, data-dependent shapes refused."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgepack.errors import ModelError
from edgepack.model import load_model
from tests.model.kit import F, assert_normalized, assert_same_outputs, model, save


def test_every_intermediate_annotated(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"])]
    m = model(nodes, [("x", F, ["N", 2, 5, 5])], [("y", F, ["N", 4])],
              {"w": np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32)})
    loaded = load_model(save(m, tmp_path), input_shapes={"x": [3, 2, 5, 5]})
    assert_normalized(loaded)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in loaded.graph.value_info}
    assert shapes == {"c": [3, 4, 5, 5], "r": [3, 4, 5, 5], "g": [3, 4, 1, 1]}
    assert_same_outputs(m, loaded)


def test_data_dependent_shape_refused(tmp_path):
    nodes = [helper.make_node("Greater", ["x", "zero"], ["pos"]),
             helper.make_node("NonZero", ["pos"], ["nz"]),
             helper.make_node("Transpose", ["nz"], ["t"]), helper.make_node("Cast", ["t"], ["y"], to=F)]
    m = model(nodes, [("x", F, [64])], [("y", F, ["K", 1])], {"zero": np.array(0, np.float32)})
    with pytest.raises(ModelError) as info:
        load_model(save(m, tmp_path))
    text = str(info.value)
    assert "depend on the input data" in text and "'nz' [1," in text and "NonZero" in info.value.hint


def test_onnxruntime_failure_is_a_model_error(tmp_path):
    """An override that shape inference cannot judge but the runtime rejects."""
    nodes = [helper.make_node("Gelu", ["x"], ["g"], domain="com.microsoft"),
             helper.make_node("Reshape", ["g", "shape"], ["y"])]
    m = model(nodes, [("x", F, ["N", 4])], [("y", F, [2, 4])], {"shape": np.array([2, 4], np.int64)})
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    loaded = load_model(save(m, tmp_path), input_shapes={"x": [2, 4]})
    assert_normalized(loaded)
    with pytest.raises(ModelError) as info:
        load_model(save(m, tmp_path), input_shapes={"x": [3, 4]})
    assert "onnxruntime could not run" in str(info.value) and "--input-shape" in info.value.hint


def test_integer_and_bool_tensors_annotated(tmp_path):
    nodes = [helper.make_node("ArgMax", ["x"], ["am"], axis=1),
             helper.make_node("Equal", ["am", "one"], ["eq"]),
             helper.make_node("Cast", ["eq"], ["y"], to=F)]
    m = model(nodes, [("x", F, [2, 5])], [("y", F, [2, 1])], {"one": np.array(1, np.int64)})
    loaded = load_model(save(m, tmp_path))
    assert_normalized(loaded)
    types = {v.name: v.type.tensor_type.elem_type for v in loaded.graph.value_info}
    assert types == {"am": TensorProto.INT64, "eq": TensorProto.BOOL}
