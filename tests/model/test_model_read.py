"""Reading and checking: each failure is one ModelError line that names the file and what to do."""
from __future__ import annotations

import logging
import random

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgepack.errors import ModelError
from edgepack.model import load_model
from tests.model.kit import F, assert_normalized, assert_same_outputs, model, save


def _mlp() -> onnx.ModelProto:
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    return model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                 [("x", F, [2, 3])], [("y", F, [2, 4])], {"w": w})


def _raises(path, *words) -> ModelError:
    with pytest.raises(ModelError) as info:
        load_model(path)
    text = str(info.value)
    assert "\n" not in text and info.value.hint
    for word in words:
        assert word in text
    return info.value


def test_missing_file(tmp_path):
    _raises(tmp_path / "nope.onnx", "nope.onnx", "does not exist")


def test_directory(tmp_path):
    _raises(tmp_path, "is a directory")


# seeded bytes: a test's parameters must be the same in every process that collects it (pytest-xdist)
@pytest.mark.parametrize("data", [random.Random(4096).randbytes(4096), b"", b"hello, I am a text file\n"],
                         ids=["random_bytes", "empty", "text"])
def test_not_onnx(tmp_path, data):
    path = tmp_path / "junk.onnx"
    path.write_bytes(data)
    _raises(path, "junk.onnx is not a readable ONNX model", "re-export")


def test_truncated(tmp_path):
    whole = _mlp().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(whole[: len(whole) // 2])
    _raises(path, "cut.onnx")


def _save_external(tmp_path, location="w.bin"):
    m = _mlp()
    path = tmp_path / "ext.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, location=location, size_threshold=0)
    return _mlp(), path  # save_model moved m's weights out: compare against a fresh copy


def test_external_data_loads(tmp_path):
    original, path = _save_external(tmp_path)
    loaded = load_model(path)
    assert loaded.graph.initializer[0].data_location == TensorProto.DEFAULT
    assert_same_outputs(original, loaded)


def test_external_data_missing(tmp_path):
    _, path = _save_external(tmp_path)
    (tmp_path / "w.bin").unlink()
    err = _raises(path, "ext.onnx", "'w.bin'", "missing")
    assert "w.bin" in err.hint


def test_external_data_truncated(tmp_path):
    _, path = _save_external(tmp_path)
    (tmp_path / "w.bin").write_bytes(b"\0" * 8)
    _raises(path, "'w.bin' is shorter")


def test_external_data_outside_folder(tmp_path):
    m = _mlp()
    tensor = m.graph.initializer[0]
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.external_data.add(key="location", value="../w.bin")
    (tmp_path / "sub").mkdir()
    _raises(save(m, tmp_path / "sub"), "outside the model's folder")


def test_checker_failure_is_one_line(tmp_path):
    m = model([helper.make_node("Relu", ["nowhere"], ["y"])], [("x", F, [2])], [("y", F, [2])])
    _raises(save(m, tmp_path), "m.onnx fails the ONNX checker", "nowhere")


def test_old_opset_rejected(tmp_path):
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [2])], [("y", F, [2])],
              opset=6, ir_version=3)
    err = _raises(save(m, tmp_path), "opset 6", "opset 7 or newer")
    assert "version_converter" in err.hint


def test_opset_7_accepted(tmp_path):
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, [2])], [("y", F, [2])],
              opset=7, ir_version=3)
    assert_normalized(load_model(save(m, tmp_path)))


def test_nonstandard_domain_noted_and_shapes_recorded(tmp_path, caplog):
    """com.microsoft ops are left in place; onnxruntime supplies the shapes ONNX cannot infer."""
    m = model([helper.make_node("Gelu", ["x"], ["g"], domain="com.microsoft"),
               helper.make_node("Relu", ["g"], ["y"])], [("x", F, [2, 5])], [("y", F, ["a", "b"])])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with caplog.at_level(logging.WARNING, logger="edgepack.model"):
        loaded = load_model(save(m, tmp_path))
    assert "com.microsoft: Gelu" in caplog.text
    assert [n.op_type for n in loaded.graph.node] == ["Gelu", "Relu"]
    assert_normalized(loaded)
    g = next(v for v in loaded.graph.value_info if v.name == "g")
    assert [d.dim_value for d in g.type.tensor_type.shape.dim] == [2, 5]
    assert [d.dim_value for d in loaded.graph.output[0].type.tensor_type.shape.dim] == [2, 5]
    assert_same_outputs(m, loaded)


def test_local_functions_inlined(tmp_path):
    body = helper.make_function("local", "Twice", ["a"], ["b"],
                                [helper.make_node("Add", ["a", "a"], ["b"])],
                                [helper.make_opsetid("", 13)])
    m = model([helper.make_node("Twice", ["x"], ["t"], domain="local"),
               helper.make_node("Relu", ["t"], ["y"])], [("x", F, [3])], [("y", F, [3])])
    m.opset_import.append(helper.make_opsetid("local", 1))
    m.functions.append(body)
    loaded = load_model(save(m, tmp_path))
    assert [n.op_type for n in loaded.graph.node] == ["Add", "Relu"] and not loaded.functions
    assert_same_outputs(m, loaded)


def test_over_2gb_path_route(tmp_path, monkeypatch):
    """With the protobuf limit lowered, the by-path checker and external-data runs are exercised."""
    import edgepack.model.read as read
    original, path = _save_external(tmp_path)
    monkeypatch.setattr(read, "PROTOBUF_LIMIT", 1)
    assert not read.fits_protobuf(original)
    loaded = load_model(path)
    monkeypatch.undo()
    assert_same_outputs(original, loaded)
