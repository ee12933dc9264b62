"""The pure helpers of benchmarks/baseline_env.py (the onnx2tf venv itself is exercised by hand)."""
from __future__ import annotations


import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgepack.testing import corpus

from .kit import load_benchmark

@pytest.fixture(scope="module")
def baseline():
    return load_benchmark("baseline_env")


def test_ir3_model_is_lifted_without_changing_numbers(baseline, tmp_path):
    src = corpus.fetch("archonly_light_squeezenet.onnx")
    out = baseline.prepare_model(src, tmp_path / "sq.onnx")
    model = onnx.load(str(out))
    assert model.ir_version == 4
    assert [v.name for v in model.graph.input] == ["data_0"]
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    want = ort.InferenceSession(str(src)).run(None, {"data_0": x})[0]
    got = ort.InferenceSession(str(out)).run(None, {"data_0": x})[0]
    np.testing.assert_array_equal(got, want)
    assert corpus.fetch("archonly_light_squeezenet.onnx").read_bytes() == src.read_bytes()


def test_newer_ir_is_copied_byte_for_byte(baseline, tmp_path):
    src = corpus.fetch("audio_oww_alexa_v0.1.onnx")
    out = baseline.prepare_model(src, tmp_path / "alexa.onnx")
    assert out.read_bytes() == src.read_bytes()


def test_calibration_stub(baseline, tmp_path):
    path = baseline.write_calibration_stub(tmp_path)
    data = np.load(path)
    assert path.name == "calibration_image_sample_data_20x128x128x3_float32.npy"
    assert data.shape == (20, 128, 128, 3) and data.dtype == np.float32
    assert 0.0 <= data.min() and data.max() < 1.0 and data.std() > 0.2


def test_marker_lists_every_pin(baseline):
    lines = baseline._marker_text().splitlines()
    assert lines[0] == f"onnx2tf=={baseline.ONNX2TF_VERSION}"
    assert "numpy==1.26.4" in lines and "tensorflow==2.19.0" in lines and "onnx==1.19.1" in lines
    assert all("==" in line for line in lines)
