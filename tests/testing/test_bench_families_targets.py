"""benchmarks/bench_families_targets.py: a real w8a8 row through the coreml target and the reference executor,
one through the qualcomm target on the HTP simulator, and the table it prints."""
from __future__ import annotations

import numpy as np
import onnx

from benchmarks import families_measure
from benchmarks.bench_families_targets import convert, run_package, table
from edgepack.model import load_model
from edgepack.model.ort import reference_outputs
from tests.coreml.kit import heavy_model
from tests.qualcomm.kit import needs_htp


def _setup(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(heavy_model(), str(path))
    rng = np.random.default_rng(0)
    samples = [{"x": rng.standard_normal((1, 16, 12, 12)).astype(np.float32)} for _ in range(24)]
    return load_model(path), samples[:8], samples[8:16], samples[16:]


def test_a_w8a8_row_is_judged_on_the_held_out_inputs(tmp_path):
    model, calib, search, hold = _setup(tmp_path)
    conv = convert(model, (calib, search, reference_outputs(model, search)), "w8a8-issue")
    assert conv.info["deployment_target"] == "iOS17" and conv.extra["activations"]["quantized_ops"] == 3
    got = run_package(conv.files[conv.file], model, hold)
    v = families_measure.judge(got, reference_outputs(model, hold), ["y"])
    assert v["passed"] and 0.99 < v["cosine"] < 1.0 and v["range_error"] < 0.05
    row = {"model": "cnn", "precision": "w8a8-issue", **v, "size": 50, "base_size": 100, "kept": [], "layers": 3,
           "seconds": 1.0}
    text = table([row, {"model": "cnn", "precision": "w8", "error": "boom", "seconds": 2.0}])
    assert "| cnn | w8a8-issue | " in text and "| pass |" in text and "| 0.500 | 0 of 3 | 1 |" in text
    assert "| cnn | w8 | — | — | fail | — | — | — | boom | 2 |" in text


@needs_htp
def test_a_qualcomm_row_runs_on_the_htp_simulator(tmp_path):
    model, calib, search, hold = _setup(tmp_path)
    conv = convert(model, (calib, search, reference_outputs(model, search)), "w8a16", "qualcomm")
    assert conv.file.endswith("model.qdq.onnx")
    got = run_package(conv.files[conv.file], model, hold, "qualcomm")
    v = families_measure.judge(got, reference_outputs(model, hold), ["y"])
    assert got[0]["y"].shape == (1, 256) and v["passed"] and v["cosine"] < 1.0
