"""`edgepack build --precision int8` and `edgepack debug-quant` from the command line, on a model built to
break naive int8 (one outlier channel), with real calibration files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack_runtime import Runtime
from edgepack_runtime.bundle import Bundle
from tests.tflite.test_int8 import mixed_net, outlier_cnn

RUNNER = CliRunner()


def _invoke(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def outlier(tmp_path):
    outlier_cnn(tmp_path / "o.onnx")
    x = np.random.default_rng(3).standard_normal((30, 1, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x)
    return tmp_path


def test_int8_build_raises_the_culprit_to_int16_and_reports_it(outlier):
    # cross-layer equalization alone repairs this model (tests/transforms): the ladder is tested without it
    code, out, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", "--calibration",
                             outlier / "calib.npz", "--report", outlier / "r.html", "--json", "--transform", "all=off",
                             "--mixed-rungs", "int16,float")
    assert code == 0, err
    manifest = json.loads(out)["manifest"]
    cpu = manifest["targets"][0]
    assert cpu["precision"] == "int8" and cpu["parity"]["passed"] and cpu["parity"]["data"] == "holdout"
    floor = cpu["parity"]["floor"]            # the reference itself on inputs moved by half an int8 step
    assert floor["passed"] and 0.999 < floor["min_cosine"] < 1.0 and floor["input_steps"]["x"] > 0
    assert cpu["parity"]["samples"] == 6 and manifest["calibration"]["counts"] == {"calib": 24, "holdout": 6,
                                                                                  "total": 30}
    q = cpu["quantization"]
    # the mixed ladder's first rung (int16 activations) repairs it: conv2 stays on the integer path
    assert [f["origin"] for f in q["int16_layers"]] == ["conv2"] and q["culprits"][0] == q["int16_layers"][0]["tensor"]
    assert q["float_layers"] == [] and q["int16_ops"] == 2
    assert [(t.get("rung"), t["passed"]) for t in q["mixed_precision"]["tried"]] == [(None, False), ("int16", True)]
    assert cpu["latency_ms"]["mean"] > 0 and "ratio_to_fp32" in cpu["latency_ms"]
    html = (outlier / "r.html").read_text()
    assert "conv2" in html and "<svg" in html and "http://" not in html
    assert "fp32, inputs moved by half an int8 step" in html
    baseline = json.loads(Bundle.open(outlier / "o.edgepack").read("drift/baseline.json"))
    assert baseline["samples"] == 30 and baseline["data"] == "npz"          # the whole calibration set
    x = np.load(outlier / "calib.npz")["x"]
    assert abs(baseline["inputs"]["x"]["mean"] - float(x.mean())) < 1e-6
    assert sum(baseline["inputs"]["x"]["counts"]) == x.size
    assert "classes" in json.dumps(baseline["outputs"]["y"]) or "class" in json.dumps(baseline["outputs"]["y"])
    with Runtime.open(outlier / "o.edgepack") as rt:
        assert rt.self_check()["passed"]
        y = rt.run({"x": np.zeros((1, 3, 16, 16), np.float32)})["y"]
        assert y.shape == (1, 10) and y.dtype == np.float32


def test_int8_gate_fails_without_mixed_precision_and_names_the_layer(outlier):
    code, _, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", "--calibration",
                           outlier / "calib.npz", "--no-mixed-precision", "-o", outlier / "x.edgepack",
                           "--transform", "all=off")       # CLE alone would repair it
    assert code == 5 and "conv2" in err and "debug-quant" in err and "cosine" in err
    assert not (outlier / "x.edgepack").exists()
    code, _, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", "--calibration",
                           outlier / "calib.npz", "--keep-float", "conv2", "--no-mixed-precision",
                           "-o", outlier / "k.edgepack")
    assert code == 0, err


def test_debug_quant_ranks_the_culprit_first(outlier):
    # cross-layer equalization alone repairs this model: the plain quantization is looked at without it
    code, out, err = _invoke("debug-quant", outlier / "o.onnx", "--calibration", outlier / "calib.npz", "--json",
                             "--transform", "all=off")
    assert code == 0, err
    report = json.loads(out)
    by_tensor = {r["tensor"]: r for r in report["layers"]}
    worst = by_tensor[report["culprits"][0]]
    assert worst["origin"] == "conv2" and not report["parity"]["passed"]
    # the fp32 model holds on inputs moved by half an int8 step: the gate is int8's to meet
    assert report["floor"]["passed"] and report["floor"]["min_cosine"] > 0.999
    code, out, _ = _invoke("debug-quant", outlier / "o.onnx", "--calibration", outlier / "calib.npz",
                           "--transform", "all=off")
    text = " ".join(out.split())
    assert code == 0 and "culprit: conv2" in text
    assert "the fp32 model on inputs moved by half an int8 step" in text and "meets the gate" in text


def test_int8_io_bundle_runs_float_in_float_out(tmp_path):
    mixed_net(tmp_path / "m.onnx")
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(0).standard_normal((20, 1, 3, 16, 16)).astype(np.float32))
    code, out, err = _invoke("build", tmp_path / "m.onnx", "--precision", "int8", "--io", "uint8",
                             "--calibration", tmp_path / "c.npz", "--method", "mse", "--json")
    assert code == 0, err
    cpu = json.loads(out)["manifest"]["targets"][0]
    assert cpu["quantization"]["io"] == "uint8" and cpu["quantization"]["method"] == "mse"
    with Runtime.open(tmp_path / "m.edgepack") as rt:
        y = rt.run({"x": np.ones((1, 3, 16, 16), np.float32)})["y"]
        assert y.dtype == np.float32 and y.shape == (1, 10)


@pytest.mark.parametrize("args,needle", [
    (["--method", "kl"], "--method 'kl'"),
    (["--io", "fp16"], "--io 'fp16'"),
])
def test_bad_int8_options(outlier, args, needle):
    code, _, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", *args)
    assert code != 0 and needle in err


@pytest.mark.parametrize("make,needle", [
    (lambda d: np.savez(d / "bad.npz", x=np.zeros((8, 1, 3, 8, 8), np.float32)), "[1, 3, 8, 8]"),
    (lambda d: np.savez(d / "bad.npz", x=np.zeros((8, 1, 3, 16, 16), np.int32)), "int32"),
    (lambda d: np.savez(d / "bad.npz", x=np.full((8, 1, 3, 16, 16), np.nan, np.float32)), "NaN"),
    (lambda d: np.savez(d / "bad.npz", x=np.zeros((1, 1, 3, 16, 16), np.float32)), "at least 2"),
    (lambda d: np.savez(d / "bad.npz", image=np.zeros((8, 1, 3, 16, 16), np.float32)), "image"),
])
def test_bad_calibration_data_is_refused_clearly(outlier, make, needle):
    make(outlier)
    code, _, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", "--calibration", outlier / "bad.npz")
    assert code == 3 and needle in " ".join(err.split()), err
    (outlier / "empty").mkdir()
    code, _, err = _invoke("build", outlier / "o.onnx", "--calibration", outlier / "empty")
    assert code == 3 and ("empty" in err.lower() or "no .npy" in err), err


def test_int8_from_an_image_folder_with_a_preprocess_spec(tmp_path):
    from PIL import Image
    mixed_net(tmp_path / "m.onnx")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(images / f"img{i}.png")
    code, out, err = _invoke("build", tmp_path / "m.onnx", "--precision", "int8", "--calibration", images,
                             "--preprocess", "mean=0.5,0.5,0.5;std=0.25,0.25,0.25", "--json")
    assert code == 0, err
    manifest = json.loads(out)["manifest"]
    cal = manifest["calibration"]
    assert cal["kind"] == "images" and cal["counts"]["total"] == 12 and not cal["synthetic"]
    assert cal["preprocess"]["mean"] == [0.5, 0.5, 0.5] and cal["preprocess"]["size"] == [16, 16]
    assert manifest["targets"][0]["parity"]["passed"]
    code, _, err = _invoke("build", tmp_path / "m.onnx", "--calibration", images, "--preprocess", "layout=HWC")
    assert code == 3 and "layout" in err


def test_report_is_written_when_the_gate_fails(outlier):
    code, _, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", "--calibration",
                           outlier / "calib.npz", "--no-mixed-precision", "--report", outlier / "fail.html",
                           "-o", outlier / "fail.edgepack", "--transform", "all=off")
    assert code == 5 and "fail.html" in err
    html = (outlier / "fail.html").read_text()
    assert "conv2" in html and "culprit" in html.lower() and "FAIL" in html.upper()
    assert not (outlier / "fail.edgepack").exists()


def test_each_target_is_held_to_its_own_precision_gate(outlier):
    code, out, err = _invoke("build", outlier / "o.onnx", "--precision", "cpu=int8", "--calibration",
                             outlier / "calib.npz", "--target", "cpu", "--target", "onnx", "--json")
    assert code == 0, err
    targets = {t["name"]: t for t in json.loads(out)["manifest"]["targets"]}
    assert targets["cpu"]["parity"]["thresholds"]["min_cosine"] == 0.98
    assert targets["cpu"]["parity"]["thresholds"]["cosine_over"] == "mean"
    assert targets["onnx"]["precision"] == "fp32"
    assert targets["onnx"]["parity"]["thresholds"]["min_cosine"] == 0.9999
    assert targets["onnx"]["parity"]["min_cosine"] > 0.99999


def test_one_precision_for_targets_that_lack_it_is_an_error_naming_them(outlier):
    code, _, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", "--target", "cpu", "--target", "onnx")
    assert code == 1, err
    line = " ".join(err.split())
    assert "precision 'int8' is not offered by target(s) onnx (onnx: fp32)" in line, line
    assert "--precision cpu=int8,onnx=fp32" in line, line
    assert not (outlier / "o.edgepack").exists()


def test_the_cpu_policy_skips_the_int16_rung_by_default_and_strict_climbs_it(outlier):
    # XNNPACK has no int16 kernels (16x8 layers ran ~20x slower than fp32): under --int8-policy cpu a
    # sensitive layer goes straight to float; integer-only accelerators (strict) get the int16 rung first
    runs = {}
    for policy in ("cpu", "strict"):
        code, out, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", "--calibration",
                                 outlier / "calib.npz", "--json", "--transform", "all=off", "--int8-policy", policy,
                                 "-o", outlier / f"{policy}.edgepack")
        assert code == 0, err
        runs[policy] = json.loads(out)["manifest"]["targets"][0]["quantization"]
    assert runs["cpu"]["int16_layers"] == [] and [f["origin"] for f in runs["cpu"]["float_layers"]] == ["conv2"]
    assert {t.get("rung") for t in runs["cpu"]["mixed_precision"]["tried"]} <= {None, "float"}
    assert [f["origin"] for f in runs["strict"]["int16_layers"]] == ["conv2"] and runs["strict"]["float_layers"] == []
    code, _, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", "--mixed-rungs", "int4",
                           "-o", outlier / "bad.edgepack")
    assert code != 0 and "'int4' is not one of" in err and "int16,float" in err


def test_the_build_prints_the_references_floor(outlier):
    code, out, err = _invoke("build", outlier / "o.onnx", "--precision", "int8", "--calibration",
                             outlier / "calib.npz")
    assert code == 0, err
    line = next(x for x in out.splitlines() if "inputs moved by half an int8 step" in x)
    assert "meets the gate" in line and float(line.split("cosine ")[1].split(",")[0]) > 0.999
