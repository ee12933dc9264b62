"""benchmarks/ort_qdq.py: the onnxruntime static QDQ int8 baseline."""
from __future__ import annotations


import numpy as np
import onnx
import pytest

from edgepack.testing import fitted

from .kit import load_benchmark

@pytest.fixture(scope="module")
def qdq():
    return load_benchmark("ort_qdq")


@pytest.fixture(scope="module")
def cnn():
    return fitted.small_cnn(0)


def test_small_cnn_qdq_agrees_with_fp32(qdq, cnn, tmp_path):
    out = qdq.ort_quantize_static(cnn.model, cnn.calibration(100, split="train"), tmp_path / "cnn.qdq.onnx")
    assert out == tmp_path / "cnn.qdq.onnx" and out.is_file()
    m = onnx.load(str(out))
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {t.name: t for t in m.graph.initializer}
    # weights are int8, per channel (a scale vector per conv weight)
    int8_weights = [t for t in inits.values() if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert int8_weights
    dq_scales = [inits[n.input[1]] for n in m.graph.node
                 if n.op_type == "DequantizeLinear" and n.input[0] in {t.name for t in int8_weights}]
    assert dq_scales and all(len(s.dims) == 1 and s.dims[0] > 1 for s in dq_scales)

    samples = [{"x": x} for x in cnn.x_test[:200]]
    got = qdq.run_ort(out, samples)
    ref = qdq.run_ort(cnn.model, samples)
    assert set(got[0]) == {"logits"} and got[0]["logits"].shape == (1, 10)
    a = qdq.agreement(got, ref)
    assert a["n"] == 200
    assert a["top1"] >= 0.9
    assert a["cosine_min"] > 0.9 and a["snr_db"] > 15
    acc = cnn.accuracy([g["logits"] for g in got], cnn.y_test[:200])
    assert acc >= 0.9


def test_agreement_measures(qdq):
    rng = np.random.default_rng(0)
    ref = [{"y": rng.normal(size=(1, 8)).astype(np.float32)} for _ in range(20)]
    same = qdq.agreement(ref, ref)
    assert same["top1"] == 1.0 and same["cosine_min"] == pytest.approx(1.0) and same["snr_db"] == float("inf")
    noisy = [{"y": r["y"] + np.float32(0.1) * rng.normal(size=(1, 8)).astype(np.float32)} for r in ref]
    a = qdq.agreement(noisy, ref)
    assert 15 < a["snr_db"] < 25 and 0.9 < a["cosine_min"] < 1.0 and a["cosine_min"] <= a["cosine_mean"]
    flipped = [{"y": -r["y"]} for r in ref]
    b = qdq.agreement(flipped, ref)
    assert b["top1"] == 0.0 and b["cosine_min"] == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        qdq.agreement(ref[:3], ref)


def test_method_by_name(qdq, cnn, tmp_path):
    calib = cnn.calibration(16, split="train")
    with pytest.raises(ValueError, match="unknown calibration method"):
        qdq.ort_quantize_static(cnn.model, calib, tmp_path / "a.onnx", method="bogus")
    out = qdq.ort_quantize_static(cnn.model, calib, tmp_path / "p.onnx", method="Percentile")
    got = qdq.run_ort(out, [{"x": cnn.x_test[0]}])
    assert got[0]["logits"].shape == (1, 10) and np.isfinite(got[0]["logits"]).all()
