"""Initializers-as-inputs, input shape overrides and the dynamic-dimension error."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgepack.errors import DynamicShapeError, ModelError
from edgepack.model import load_model
from tests.model.kit import F, assert_normalized, assert_same_outputs, model, save


def _dims(vi) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]


def _two_inputs():
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    return model(nodes, [("a", F, ["N", 3, "H", "W"]), ("b", F, [1, 3, 1, "W"])],
                 [("y", F, ["N", 3, "H", "W"])])


def test_initializers_listed_as_inputs_are_constants(tmp_path):
    w = np.full((2, 3), 0.5, np.float32)
    m = model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", F, [2, 3]), ("w", F, [2, 3])],
              [("y", F, [2, 3])], {"w": w}, opset=9, ir_version=3)
    loaded = load_model(save(m, tmp_path))
    assert [i.name for i in loaded.graph.input] == ["x"]
    assert [t.name for t in loaded.graph.initializer] == ["w"]
    assert loaded.ir_version >= 4
    assert_normalized(loaded)
    assert_same_outputs(m, loaded)


def test_dynamic_error_lists_every_dim(tmp_path):
    with pytest.raises(DynamicShapeError) as info:
        load_model(save(_two_inputs(), tmp_path))
    assert info.value.dims == [("a", 0, "N"), ("a", 2, "H"), ("a", 3, "W"), ("b", 3, "W")]
    text = str(info.value)
    assert "4 dynamic dimension(s)" in text and "a[2]=H" in text and "b[3]=W" in text
    assert "--input-shape a=..." in text and "--input-shape b=..." in text


def test_partial_override_still_lists_the_rest(tmp_path):
    with pytest.raises(DynamicShapeError) as info:
        load_model(save(_two_inputs(), tmp_path), input_shapes={"a": [2, 3, 4, 5]})
    assert info.value.dims == [("b", 3, "W")]


def test_overrides_fix_inputs_and_outputs(tmp_path):
    m = _two_inputs()
    loaded = load_model(save(m, tmp_path), input_shapes={"a": [2, 3, 4, 5], "b": [1, 3, 1, 5]})
    assert [_dims(i) for i in loaded.graph.input] == [[2, 3, 4, 5], [1, 3, 1, 5]]
    assert _dims(loaded.graph.output[0]) == [2, 3, 4, 5]
    assert_normalized(loaded)
    assert_same_outputs(m, loaded)


def test_override_may_repeat_static_dims(tmp_path):
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [1, 3])], [("y", F, [1, 3])])
    loaded = load_model(save(m, tmp_path), input_shapes={"x": [1, 3]})
    assert _dims(loaded.graph.input[0]) == [1, 3]


def test_unknown_input_name_lists_real_names(tmp_path):
    with pytest.raises(ModelError) as info:
        load_model(save(_two_inputs(), tmp_path), input_shapes={"data": [1, 3, 4, 5]})
    assert "no input named 'data'" in str(info.value) and "'a', 'b'" in str(info.value)


def test_wrong_rank_shows_declared_shape(tmp_path):
    with pytest.raises(ModelError) as info:
        load_model(save(_two_inputs(), tmp_path), input_shapes={"a": [1, 3, 4]})
    assert "declared as [N,3,H,W] (rank 4)" in str(info.value) and "rank 3" in str(info.value)


def test_static_dim_cannot_change(tmp_path):
    with pytest.raises(ModelError) as info:
        load_model(save(_two_inputs(), tmp_path), input_shapes={"a": [1, 4, 8, 8], "b": [1, 3, 1, 8]})
    assert "static dim 1 = 3" in str(info.value) and "asks for 4" in str(info.value)


def test_non_positive_override_rejected(tmp_path):
    with pytest.raises(ModelError) as info:
        load_model(save(_two_inputs(), tmp_path), input_shapes={"a": [0, 3, 4, 5]})
    assert "non-positive" in str(info.value)


def test_int_input_dtype_kept(tmp_path):
    m = model([helper.make_node("Cast", ["i"], ["y"], to=TensorProto.FLOAT)],
              [("i", TensorProto.INT64, ["N"])], [("y", F, ["N"])])
    loaded = load_model(save(m, tmp_path), input_shapes={"i": [6]})
    assert loaded.graph.input[0].type.tensor_type.elem_type == TensorProto.INT64
    assert _dims(loaded.graph.output[0]) == [6]
