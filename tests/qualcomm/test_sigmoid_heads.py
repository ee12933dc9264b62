"""A Sigmoid model output in the tail of the sigmoid at 16-bit activations (``quantize.eight_bit_outputs``).

onnxruntime's QNN recipe gives a 16-bit Sigmoid's output the fixed scale 1/65536 QNN requires, and HTP's
simulator computes it in steps of 2^-15 rounded down: a wake-word score of 1e-5 ... 4e-3 came out 0 on 40% of
openWakeWord's alexa held-out samples. Kept at 8 bits with its calibrated scale, it holds (measured on HTP)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper as h

from edgepack.model.ort import reference_outputs
from edgepack.targets.qualcomm import htp
from edgepack.targets.qualcomm import quantize as qmod
from edgepack.targets.qualcomm.quantize import HTP_SIGMOID16_STEP, eight_bit_outputs, eight_bit_sigmoids, quantize

from .kit import model, needs_htp

D, H = 16, 8


def head(bias: float, inner: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(0, 0.5, (D, H)).astype(np.float32), "b1": np.zeros(H, np.float32),
             "w2": rng.normal(0, 0.5, (H, 1)).astype(np.float32), "b2": np.array([bias], np.float32),
             "two": np.array(2.0, np.float32)}
    nodes = [h.make_node("Gemm", ["x", "w1", "b1"], ["a"], name="fc1"), h.make_node("Relu", ["a"], ["r"], name="relu"),
             h.make_node("Gemm", ["r", "w2", "b2"], ["logit"], name="fc2"),
             h.make_node("Sigmoid", ["logit"], ["s" if inner else "p"], name="score")]
    if inner:
        nodes.append(h.make_node("Mul", ["s", "two"], ["p"], name="double"))
    return model(nodes, inits, [("x", [1, D])], ["p"])


def _samples(n, seed):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, D)).astype(np.float32)} for _ in range(n)]


@pytest.mark.parametrize("bias,inner,found", [(-9.0, False, True), (0.0, False, False), (-9.0, True, False)])
def test_which_sigmoids_stay_at_8_bits(bias, inner, found):
    narrow = eight_bit_outputs(head(bias, inner), _samples(32, 1))
    if not found:
        assert narrow == {}
        return
    [(tensor, (lo, hi))] = narrow.items()
    assert tensor == "p" and lo == 0.0 and 1e-4 < hi < 255 * HTP_SIGMOID16_STEP


def _on_htp(m, precision_activations="uint16"):
    calib, hold = _samples(256, 1), _samples(32, 2)      # calibration covering the held-out scores' range
    qdq = quantize(m, calib, activations=precision_activations)
    got = np.ravel([o[0] for o in htp.run(qdq, hold)])
    ref = np.ravel([r["p"] for r in reference_outputs(m, hold)])
    return qdq, got, ref


@needs_htp
def test_a_16_bit_model_keeps_the_tail_sigmoid_at_8_bits_on_htp():
    qdq, got, ref = _on_htp(head(-11.0))
    assert eight_bit_sigmoids(qdq) == ["score"]
    assert ref.max() < 0.01
    assert np.max(np.abs(got - ref)) < 0.1 * ref.max()


@needs_htp
def test_at_the_fixed_16_bit_grid_htp_loses_the_tail(monkeypatch):
    """The failure reproduced: without the rule the Sigmoid gets 1/65536 and HTP's steps of 2^-15, rounded
    down."""
    monkeypatch.setattr(qmod, "eight_bit_outputs", lambda prepared, samples: {})
    qdq, got, ref = _on_htp(head(-11.0))
    assert eight_bit_sigmoids(qdq) == []
    steps = got / HTP_SIGMOID16_STEP
    assert np.allclose(steps, np.round(steps), atol=1e-3)           # whole steps of 2^-15
    assert np.max(np.abs(got - ref)) > 0.1 * ref.max()


@needs_htp
def test_the_w8a16_build_records_it_and_passes(tmp_path):
    from edgepack.build import build
    path = tmp_path / "head.onnx"
    onnx.save(head(-11.0), str(path))
    res = build(str(path), targets=["qualcomm"], precision="w8a16", samples=_samples(300, 1),
                out=tmp_path / "h.edgepack")
    (entry,) = res.manifest["targets"]
    assert entry["qnn"]["eight_bit_outputs"] == ["score"] and entry["qnn"]["activations"] == "uint16"
    assert entry["parity"]["passed"] and entry["parity"]["backend"] == "qnn"
    assert entry["parity"]["outputs"]["p"]["cosine_over_samples"] == 1
    assert entry["parity"]["max_rel_error"] < 0.1
