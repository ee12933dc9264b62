"""The pieces of benchmarks/bench_int8_families.py that decide its numbers: the issue's verdict, the precision
specs, the inputs made for the recognizer and Smart Turn, and the table rows."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks import families_data, families_measure, families_report
from benchmarks.bench_int8_families import default_precisions, parse_spec


def _samples(arrays, name="y"):
    return [{name: a} for a in arrays]


def test_identical_outputs_pass_with_cosine_one():
    ref = _samples([np.linspace(-1, 1, 20).reshape(1, 20) * k for k in (1, 2, 3)])
    v = families_measure.judge(ref, ref, ["y"])
    assert v["passed"] and v["cosine"] == pytest.approx(1.0) and v["range_error"] == 0.0


def test_error_is_relative_to_the_range_of_the_reference():
    ref = [np.full((1, 10), 5.0) + np.arange(10) / 10 for _ in range(3)]      # range 0.9 around 5
    got = [r.copy() for r in ref]
    got[1][0, 3] += 0.1                                                      # 11% of the range
    v = families_measure.judge(_samples(got), _samples(ref), ["y"])
    assert v["cosine"] > 0.999                                               # cosine alone would pass
    assert v["range_error"] == pytest.approx(0.1 / 0.9) and not v["passed"]
    got[1][0, 3] -= 0.05
    assert families_measure.judge(_samples(got), _samples(ref), ["y"])["passed"]


def test_one_value_per_sample_gets_its_cosine_over_samples():
    ref = _samples([np.array([[p]]) for p in (0.9, 0.1, 0.5, 0.7)])
    flat = _samples([np.array([[0.5]]) for _ in range(4)])                  # positive, so each sign agrees
    v = families_measure.judge(flat, ref, ["y"])
    assert v["cosine"] < 0.95 and v["outputs"]["y"]["cosine_over_samples"] == 1


def test_nan_never_passes_and_worst_output_is_named():
    ref = [{"a": np.ones((1, 4)), "b": np.arange(4.0).reshape(1, 4) + 1}]
    got = [{"a": np.ones((1, 4)), "b": np.full((1, 4), np.nan)}]
    v = families_measure.judge(got, ref, ["a", "b"])
    assert not v["passed"] and v["cosine_output"] == "b" and v["cosine"] == 0.0


def test_classifier_figures_are_carried_as_task_figures():
    ref = _samples([np.eye(5)[i:i + 1] for i in range(3)])
    v = families_measure.judge(ref, ref, ["y"])
    assert v["task"]["y:top1_agreement"] == 1.0


def test_precision_specs():
    precision, opts = parse_spec("int8-mixed:method=minmax,max_float_fraction=0.5")
    assert precision == "int8" and opts.mixed_precision and opts.method == "minmax"
    assert opts.max_float_fraction == 0.5
    assert parse_spec("int8")[1].mixed_precision is False
    with pytest.raises(SystemExit, match="no field"):
        parse_spec("int8:nope=1")
    found = default_precisions()
    assert found[:3] == ["fp32", "int8", "int8-mixed"]
    precision, opts = parse_spec("int8-mixed:transforms.cle=off,transforms.adaround=on")
    assert opts.transforms == {"cle": "off", "adaround": "on"} and opts.mixed_precision
    assert "int8-mixed:transforms.cle=off" in found


def test_recognizer_lines_are_48_high_and_zero_padded():
    lines = families_data.text_lines(3, seed=1)
    x = lines[0]["x"]
    assert x.shape == (1, 3, 48, 320) and x.dtype == np.float32
    assert np.all(x[..., -1] == 0) and x.min() >= -1 and x.max() <= 1
    assert not np.array_equal(x, lines[1]["x"])


def test_whisper_features_shape_and_scale():
    rng = np.random.default_rng(0)
    audio = families_data.data.speech_like(3.0, 16000, rng, peak=0.5)
    f = families_data.whisper_features(audio)
    assert f.shape == (80, 800) and f.dtype == np.float32
    assert f.max() - f.min() == pytest.approx(2.0, abs=1e-5)                # 8 decades, divided by 4
    assert np.all(f[:, :400] == f.min())                                    # left padding is silence
    assert np.ptp(f[:, -100:]) > 1.0


def test_table_rows_show_failures_and_skips():
    base = {"model": "m", "precision": "int8", "runtime": "LiteRT"}
    assert "error: boom" in families_report.row({**base, "error": "boom", "seconds": 2})
    assert "already QDQ" in families_report.row({**base, "skipped": "already QDQ"})
    ok = {**base, "cosine": 0.995, "range_error": 0.05, "passed": True, "snr_db": 30.0, "size": 25,
          "fp32_size": 100, "latency": {"ratio": 0.5, "fp32_ms": 2.0, "ms": 1.0}, "quantize_ops": 3,
          "dequantize_ops": 1, "task": {"y:top1_agreement": 1.0}}
    line = families_report.row(ok)
    assert "| 0.9950 | 5.0% | pass |" in line and "0.250" in line and "0.50 (2 → 1)" in line


def test_a_later_run_replaces_rows_of_the_same_precision():
    first = {"commit": "a", "runs": {"m": {"rows": [{"model": "m", "precision": "fp32"},
                                                    {"model": "m", "precision": "ort-qdq", "error": "x"}],
                                           "done": False, "stopped": "timed out"}}}
    second = {"commit": "b", "runs": {"m": {"rows": [{"model": "m", "precision": "int8"},
                                                     {"model": "m", "precision": "fp32"}], "done": True}}}
    run = families_report.merge([first, second])["runs"]["m"]
    assert [r["precision"] for r in run["rows"]] == ["fp32", "ort-qdq", "int8"]
    assert run["rows"][0]["notes"] == ["re-run at b"] and "stopped" not in run


def test_fused_onnxruntime_row_measures_its_kernels_against_the_models_definition(tmp_path):
    """For an already-quantized model the bench runs the same QDQ model in onnxruntime with its fused integer
    kernels against the reference (the model as ONNX defines it, every Q/DQ in float): an attention head whose
    Softmax and products onnxruntime fuses lands close but not bit-equal where the kernels sum in 32 bits,
    and further where they saturate (x86 without VNNI)."""
    from benchmarks import ort_qdq
    from edgepack.model import load_model
    from edgepack.model.ort import reference_outputs
    from edgepack_runtime.backends.ort import fused_int8_saturates
    from tests.tflite.qdq_models import attention_head, quantized
    path = quantized(attention_head(), tmp_path, op_types=["MatMul", "Softmax"])
    model = load_model(path)
    rng = np.random.default_rng(4)
    hold = [{"x": rng.standard_normal([1, 16, 32]).astype(np.float32)} for _ in range(3)]
    ref = reference_outputs(model, hold)
    unfused = ort_qdq.run_ort(model, hold, optimize=False)
    assert all(np.array_equal(r["y"], u["y"]) for r, u in zip(ref, unfused))    # the reference is the definition
    row = families_measure.ort_fused(model, hold, ref, ["y"])
    assert row["precision"] == "ort-fused" and "error" not in row
    assert row["cosine"] < 1.0 and row["range_error"] > 0
    if not fused_int8_saturates():
        assert row["cosine"] > 0.99 and row["range_error"] < 0.1
    same = families_measure.judge(ort_qdq.run_ort(model, hold, optimize=True), ref, ["y"])
    assert same["cosine"] == row["cosine"]                                   # the row is that comparison


def test_the_onnxruntime_baseline_row_runs_fused_and_says_so_where_that_saturates():
    """The quantize_static row is judged as onnxruntime runs it by default (fused int8 kernels). On a CPU where
    those saturate (x86 without VNNI) the row is not like for like: its notes say so and give the unfused
    figures (the model's definition) beside it."""
    from edgepack.model.ort import reference_outputs
    from edgepack_runtime.backends.ort import fused_int8_saturates
    from tests.tflite.qdq_models import conv_net
    model = conv_net()
    rng = np.random.default_rng(2)
    samples = [{"x": rng.standard_normal([1, 3, 16, 16]).astype(np.float32)} for _ in range(12)]
    calib, hold = samples[:8], samples[8:]
    row = families_measure.ort_baseline(model, calib, hold, reference_outputs(model, hold), ["y"], rounds=2)
    assert row["precision"] == "ort-qdq" and "error" not in row, row.get("error")
    assert 0.9 < row["cosine"] <= 1 and row["size"] > 0 and row["latency"]["ratio"] > 0
    note = " ".join(row["notes"])
    assert ("no VNNI" in note and "unfused: cos" in note) == fused_int8_saturates(), note


def test_magika_inputs_are_files_of_pinned_wheels_each_drawn_once():
    """The bench's file bytes come from pinned wheels (not the installed packages, which change with the
    environment), the same ones for a seed, with no file drawn twice while others are left."""
    from benchmarks import qnn_data
    a, b = qnn_data.file_bytes(40, 3), qnn_data.file_bytes(40, 3)
    assert all(np.array_equal(x["bytes"], y["bytes"]) for x, y in zip(a, b))
    assert len({x["bytes"].tobytes() for x in a}) == 40
    rows = np.concatenate([x["bytes"] for x in a])
    assert rows.shape == (40, 2048) and rows.dtype == np.int32 and rows.min() >= 0 and rows.max() <= 256
    assert (rows[:, :1024] != 256).any(axis=1).all()           # every file has a beginning


def test_the_issue_search_gate_is_what_a_build_asks_for_with_cosine_over_min():
    from benchmarks.bench_int8_families import issue_gate
    from edgepack.build import _gate_for
    g = issue_gate("int8")
    assert g == _gate_for("int8", False, {"min_cosine": 0.99, "max_rel_error": 0.1, "cosine_over": "min"})
    assert (g.cosine_over, g.maps, g.min_snr_db, g.min_text) == ("min", "task", 15.0, 0.95)


def test_the_dither_row_is_the_reference_on_inputs_moved_by_half_an_int8_step():
    from tests.verify.test_floor import _steep
    from edgepack.model.ort import reference_outputs
    base = np.array([1, -1, 0.5, -0.5, 0.25, -0.25, 0.75, -0.75], np.float32)
    rng = np.random.default_rng(0)
    for slope, passes in ((1e4, False), (0.1, True)):
        # each sample's sum (the logit / slope) moves the output by a fair share of its range
        samples = [{"x": (rng.permutation(base) + rng.uniform(-4, 4) / slope / 8)[None].astype(np.float32)}
                   for _ in range(8)]
        model = _steep(slope)
        ref = reference_outputs(model, samples)
        row = families_measure.dither_floor(model, samples, samples, ref, ["y"])
        assert row["precision"] == "fp32-dither" and row["dither_steps"]["x"] > 0
        assert row["passed"] is passes and "error" not in row
        assert (row["range_error"] > 0.1) is not passes


def test_the_floor_summary_places_each_quantized_row_against_the_dithered_reference():
    rows = [{"precision": "setup"},
            {"precision": "fp32-dither", "cosine": 0.97, "range_error": 0.5, "passed": False},
            {"precision": "int8", "cosine": 0.96, "range_error": 0.4, "passed": False},
            {"precision": "int8-mixed", "cosine": 0.98, "range_error": 0.3, "passed": False},
            {"precision": "int8-dynamic", "error": "boom"}]
    rows[1]["task"], rows[3]["task"] = {"y:iou_50": 0.9}, {"y:iou_50": 0.95}
    doc = {"runs": {"det": {"rows": rows}, "ids_only": {"rows": [{"precision": "int8", "cosine": 1.0,
                                                                   "range_error": 0.0, "passed": True}]}}}
    text = families_report.floor_summary(doc)
    assert text.splitlines() == ["- det: floor 0.9700 / 50.0% (fail); int8 0.9600 / 40.0% (outside); "
                                 "int8-mixed 0.9800 / 30.0% (within)"]

    rows[3]["task"] = {"y:iou_50": 0.85}                       # a worse map than the floor's: outside
    assert "int8-mixed 0.9800 / 30.0% (outside)" in families_report.floor_summary(doc)
    rows[1]["range_error"], rows[1]["task"], rows[3]["task"] = 0.999, {}, {}   # a floor at the whole range: its error says nothing
    rows[3]["range_error"] = 1.0
    assert "int8-mixed 0.9800 / 100.0% (within)" in families_report.floor_summary(doc)
