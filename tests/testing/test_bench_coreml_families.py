"""benchmarks/bench_coreml_families.py: a real w8a8 row through the coreml target and the reference executor,
and the table it prints."""
from __future__ import annotations

import numpy as np
import onnx

from benchmarks import families_measure
from benchmarks.bench_coreml_families import convert, run_package, table
from edgepack.model import load_model
from edgepack.model.ort import reference_outputs
from tests.coreml.kit import heavy_model


def test_a_w8a8_row_is_judged_on_the_held_out_inputs(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(heavy_model(), str(path))
    model = load_model(path)
    rng = np.random.default_rng(0)
    samples = [{"x": rng.standard_normal((1, 16, 12, 12)).astype(np.float32)} for _ in range(24)]
    calib, search, hold = samples[:8], samples[8:16], samples[16:]
    conv = convert(model, (calib, search, reference_outputs(model, search)), "w8a8-issue")
    assert conv.info["deployment_target"] == "iOS17" and conv.extra["activations"]["quantized_ops"] == 3
    got = run_package(conv.files[conv.file], model, hold)
    v = families_measure.judge(got, reference_outputs(model, hold), ["y"])
    assert v["passed"] and 0.99 < v["cosine"] < 1.0 and v["range_error"] < 0.05
    row = {"model": "cnn", "precision": "w8a8-issue", **v, "size": 50, "fp16_size": 100, "quantized_ops": 3,
           "fp16_activations": [], "seconds": 1.0}
    text = table([row, {"model": "cnn", "precision": "w8", "error": "boom", "seconds": 2.0}])
    assert "| cnn | w8a8-issue | " in text and "| pass |" in text and "| 0.500 | 0 of 3 | 1 |" in text
    assert "| cnn | w8 | — | — | fail | — | — | — | boom | 2 |" in text
