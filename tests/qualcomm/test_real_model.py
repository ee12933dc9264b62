"""One real model end to end: PP-OCR's text-direction classifier (MobileNetV3, 146 nodes after folding) at w8a8
on the HTP simulator, from the public corpus (fetched by sha256; under CI a missing model fails)."""
from __future__ import annotations

from edgepack_runtime import Runtime

from edgepack.build import build
from edgepack.testing.corpus import INPUT_SHAPES, fetch

from .kit import needs_htp

NAME = "ocr_ppocr_mobile_v2_cls.onnx"


@needs_htp
def test_ppocr_classifier_runs_wholly_on_htp_within_the_w8a8_gate(tmp_path):
    path = fetch(NAME)
    result = build(path, targets=["qualcomm"], input_shapes=INPUT_SHAPES[NAME], out=tmp_path / "cls.edgepack")
    (entry,) = result.manifest["targets"]
    parity, q = entry["parity"], entry["qnn"]
    assert parity["passed"] and parity["backend"] == "qnn"
    # measured: mean cosine 0.9996, min 0.9987, max relative error 0.046, SNR 30.8 dB on 8 synthetic samples
    assert parity["mean_cosine"] > 0.998 and parity["max_rel_error"] < 0.15 and parity["min_snr_db"] > 25
    p = q["placement"]
    assert p["fraction_on_htp"] == 1.0 and p["partitions"] == 1 and p["htp_nodes"] > 100
    assert q["context"]["htp_arch"] == "75" and q["context"]["size"] > entry["info"]["size"] / 2
    assert entry["info"]["size"] < 0.6 * path.stat().st_size                # int8 weights: well under fp32
    assert entry["info"]["qdq_ops"].get("BatchNormalization", 0) == 0       # folded before quantization
    with Runtime.open(result.path, backend="qnn") as rt:           # on x86-64 the simulator runs when asked
        assert rt.backend_detail == "qnn-context"
        assert rt.self_check()["passed"]
