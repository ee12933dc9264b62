"""The fitted models of edgepack.testing.fitted: valid ONNX, meaningful accuracy, a real int8 outlier, deterministic."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgepack.testing import fitted
from edgepack.testing.fitted import Fitted, fake_quant_accuracy, run_onnx


@pytest.fixture(scope="module")
def cnn() -> Fitted:
    return fitted.small_cnn(0)


@pytest.fixture(scope="module")
def transformer() -> Fitted:
    return fitted.small_transformer(0)


@pytest.fixture(scope="module")
def outlier() -> Fitted:
    return fitted.outlier_cnn(0)


@pytest.fixture(scope="module")
def every(cnn, transformer, outlier) -> dict[str, Fitted]:
    return {"small_cnn": cnn, "small_transformer": transformer, "outlier_cnn": outlier}


NAMES = ["small_cnn", "small_transformer", "outlier_cnn"]
SHAPES = {"small_cnn": ((1, 1, 16, 16), 10), "small_transformer": ((1, 16, 32), 6), "outlier_cnn": ((1, 1, 16, 16), 10)}


@pytest.mark.parametrize("name", NAMES)
def test_model_is_valid_static_opset17(every, name):
    f = every[name]
    m = f.model
    onnx.checker.check_model(m, full_check=True)
    assert [(o.domain, o.version) for o in m.opset_import] == [("", 17)]
    assert [i.name for i in m.graph.input] == ["x"] and [o.name for o in m.graph.output] == ["logits"]
    in_shape, classes = SHAPES[name]
    assert f.input_shape == in_shape and f.num_classes == classes
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # every value has a static shape after inference
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        assert all(d.HasField("dim_value") for d in dims), vi.name
    names = [n.name for n in m.graph.node]
    assert all(names) and len(set(names)) == len(names)


@pytest.mark.parametrize("name", NAMES)
def test_data_layout(every, name):
    f = every[name]
    for x, y in ((f.x_train, f.y_train), (f.x_test, f.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == f.input_shape and np.isfinite(x).all()
        assert y.dtype.kind == "i" and y.shape == (len(x),)
        assert set(np.unique(y)) == set(range(f.num_classes))
    assert len(f.x_test) >= 300


def test_small_cnn_accuracy(cnn):
    assert cnn.fp32_test_accuracy >= 0.90
    ops = {n.op_type for n in cnn.model.graph.node}
    assert {"Conv", "BatchNormalization", "Relu", "GlobalAveragePool", "Flatten", "Gemm"} <= ops
    dw = next(n for n in cnn.model.graph.node if n.name == "conv3_dw")
    assert onnx.helper.get_attribute_value(next(a for a in dw.attribute if a.name == "group")) == 32
    # the reported accuracy is onnxruntime's over x_test; training accuracy is in the same range
    assert cnn.accuracy(run_onnx(cnn.model, cnn.x_test)) == cnn.fp32_test_accuracy
    assert cnn.accuracy(run_onnx(cnn.model, cnn.x_train[:300]), cnn.y_train[:300]) >= 0.90


def test_small_transformer_accuracy(transformer):
    assert transformer.fp32_test_accuracy >= 0.80
    ops = {n.op_type for n in transformer.model.graph.node}
    assert {"LayerNormalization", "MatMul", "Softmax", "Transpose", "Reshape", "Erf", "ReduceMean", "Gemm"} <= ops
    logits = transformer.predict()
    assert logits.shape == (len(transformer.x_test), 1, 6)
    assert transformer.accuracy(logits) == transformer.fp32_test_accuracy


def test_outlier_model_keeps_fp32_accuracy_but_breaks_per_tensor_int8(cnn, outlier):
    assert outlier.culprit_node == "conv2" and outlier.culprit_tensor == "conv2_out"
    node = next(n for n in outlier.model.graph.node if n.name == outlier.culprit_node)
    assert list(node.output) == [outlier.culprit_tensor]
    assert abs(outlier.fp32_test_accuracy - cnn.fp32_test_accuracy) <= 0.01
    np.testing.assert_allclose(outlier.predict(outlier.x_test[:50]), cnn.predict(cnn.x_test[:50]), rtol=1e-3, atol=1e-3)

    # one channel of the culprit's output dwarfs the others
    probe = fitted.with_output(outlier.model, outlier.culprit_tensor)
    t = run_onnx(probe, outlier.x_test[:64], output=outlier.culprit_tensor)       # [64, 1, 32, 8, 8]
    per_channel = np.abs(t).max(axis=(0, 1, 3, 4))
    k = fitted.OUTLIER_CHANNEL
    assert per_channel[k] > 100 * np.delete(per_channel, k).max()

    # per-tensor int8 on that one tensor: collapse; on small_cnn's same tensor, or per channel: harmless
    broken = fake_quant_accuracy(outlier, outlier.culprit_tensor)
    assert broken < outlier.fp32_test_accuracy - 0.5
    assert fake_quant_accuracy(outlier, outlier.culprit_tensor, per_channel_axis=1) >= outlier.fp32_test_accuracy - 0.02
    assert fake_quant_accuracy(cnn, "conv2_out") >= cnn.fp32_test_accuracy - 0.02


def test_fake_quant():
    x = np.array([0.0, 0.5, 1.0, -1.0, 2.0], np.float32)
    np.testing.assert_allclose(fitted.fake_quant(x, 1 / 127), [0, 64 / 127, 1, -1, 1])
    assert fitted.fake_quant(x, 0.0).dtype == np.float32


def test_deterministic(cnn, transformer):
    again = fitted.small_transformer(0)
    assert again.model.SerializeToString() == transformer.model.SerializeToString()
    np.testing.assert_array_equal(again.x_test, transformer.x_test)
    np.testing.assert_array_equal(again.y_train, transformer.y_train)
    again = fitted.small_cnn(0)
    assert again.model.SerializeToString() == cnn.model.SerializeToString()
    np.testing.assert_array_equal(again.x_train, cnn.x_train)
    assert again.fp32_test_accuracy == cnn.fp32_test_accuracy
    other = fitted.small_transformer(1)
    assert other.model.SerializeToString() != transformer.model.SerializeToString()
    assert other.fp32_test_accuracy >= 0.80


def test_calibration_npz(cnn, tmp_path):
    path = cnn.save_calibration(tmp_path / "calib.npz", 32)
    with np.load(path) as d:
        assert list(d) == ["x"]
        assert d["x"].shape == (32, 1, 1, 16, 16) and d["x"].dtype == np.float32
        np.testing.assert_array_equal(d["x"], cnn.x_test[:32])
    samples = cnn.calibration(4, split="train")
    assert len(samples) == 4 and samples[0]["x"].shape == (1, 1, 16, 16)
    with pytest.raises(ValueError):
        cnn.calibration(4, split="val")


def test_build_all_caches(every, tmp_path, monkeypatch):
    monkeypatch.setattr(fitted, "BUILDERS", {n: (lambda seed, f=every[n]: f) for n in NAMES})
    first = fitted.build_all(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}-s0-v{fitted.CACHE_VERSION}{ext}" for n in NAMES for ext in (".json", ".npz", ".onnx"))

    def refit(seed):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(fitted, "BUILDERS", {n: refit for n in NAMES})
    second = fitted.build_all(tmp_path)
    for n in NAMES:
        a, b = first[n], second[n]
        assert b.model.SerializeToString() == a.model.SerializeToString()
        np.testing.assert_array_equal(b.x_test, a.x_test)
        np.testing.assert_array_equal(b.y_train, a.y_train)
        assert (b.fp32_test_accuracy, b.culprit_node, b.culprit_tensor) == (a.fp32_test_accuracy, a.culprit_node,
                                                                            a.culprit_tensor)
    with pytest.raises(KeyError):
        fitted.build("nope", cache_dir=tmp_path)
