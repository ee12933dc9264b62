import json
import subprocess
import sys

import numpy as np
import pytest

import rt_helpers as h
from edgepack_runtime.cli import main

pytest.importorskip("ai_edge_litert")
pytest.importorskip("onnxruntime")


def _npy(path, array):
    np.save(path, array)
    return str(path)


def test_run_writes_outputs(add_bundle, tmp_path, capsys):
    x = np.random.default_rng(5).standard_normal(h.NCHW).astype(np.float32)
    code = main(["run", str(add_bundle), "--input", f"x={_npy(tmp_path / 'x.npy', x)}",
                 "--output-dir", str(tmp_path / "out"), "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "ran on litert (target cpu)" in out and "y: shape [1, 2, 3, 4] float32" in out
    np.testing.assert_allclose(np.load(tmp_path / "out" / "y.npy"), x + h.BIAS.reshape(1, -1, 1, 1),
                               atol=1e-6)


def test_run_json_unnamed_input(add_bundle, tmp_path, capsys):
    x = np.zeros(h.NCHW, np.float32)
    code = main(["run", str(add_bundle), "--input", _npy(tmp_path / "x.npy", x), "--json",
                 "--backend", "onnxruntime"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["backend"] == "onnxruntime" and report["target"] == "ref"
    assert report["outputs"]["y"]["shape"] == [1, 2, 3, 4]
    assert report["outputs"]["y"]["head"] == [10.0] * 8  # channel 0 of zeros + bias


def test_run_sanitizes_output_names(tmp_path):
    from edgepack_runtime.cli import _write_outputs
    files = _write_outputs({"out/1:0": np.ones(2), "out_1_0": np.zeros(2), "..hidden": np.ones(1)},
                           tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hidden.npy", "out_1_0.npy", "out_1_0_1.npy"]
    assert np.load(files["out/1:0"]).tolist() == [1.0, 1.0]


def test_run_bad_dtype_exits_7(add_bundle, tmp_path, capsys):
    code = main(["run", str(add_bundle), "--input", f"x={_npy(tmp_path / 'x.npy', np.zeros(h.NCHW))}"])
    err = capsys.readouterr().err
    assert code == 7
    assert err == ("error: input 'x' has dtype float64 but the model expects float32 "
                   "(convert it with .astype(np.float32))\n")


def test_run_unknown_input_name(add_bundle, tmp_path, capsys):
    code = main(["run", str(add_bundle), "--input", f"z={_npy(tmp_path / 'x.npy', np.zeros(h.NCHW))}"])
    assert code == 7
    assert "unknown input name 'z'" in capsys.readouterr().err


def test_run_unknown_backend_exits_8(add_bundle, tmp_path, capsys):
    code = main(["run", str(add_bundle), "--backend", "nope", "--input", "x=x.npy"])
    assert code == 8 and capsys.readouterr().err.startswith("error: unknown backend 'nope'")


def test_check_ok_and_json(add_bundle, capsys):
    assert main(["check", str(add_bundle)]) == 0
    out = capsys.readouterr().out
    assert "hashes ok; backend litert (target cpu)" in out and "self-check passed on 2 sample(s)" in out
    assert main(["check", str(add_bundle), "--json", "--backend", "onnxruntime"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and report["backend"] == "onnxruntime"
    assert report["outputs"]["y"]["max_abs"] < 1e-5


def test_check_corrupt_bundle_exits_6(add_bundle, tmp_path, capsys):
    data = bytearray(add_bundle.read_bytes())
    data[data.index(h.onnx_add_model()) + 40] ^= 1
    bad = tmp_path / "bad.edgepack"
    bad.write_bytes(bytes(data))
    assert main(["check", str(bad)]) == 6
    err = capsys.readouterr().err
    assert err.startswith("error: bundle member models/ref/model.onnx is corrupt: sha256 mismatch")
    assert err.count("\n") == 1
    assert main(["check", str(bad), "--verbose"]) == 6
    assert "Traceback" in capsys.readouterr().err


def test_check_failing_samples_exits_6(tmp_path, capsys):
    path = h.add_bundle(tmp_path / "off.edgepack", sample_bias=np.array([10.0, 25.0], np.float32))
    assert main(["check", str(path)]) == 6
    assert "self-check failed on litert/cpu" in capsys.readouterr().err


def test_info(add_bundle, capsys):
    assert main(["info", str(add_bundle)]) == 0
    out = capsys.readouterr().out
    assert "tiny 1  (bundle format 1.0" in out and "target cpu: tflite fp32" in out
    assert "would run: litert/cpu" in out
    assert main(["info", str(add_bundle), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["selected"] == {"backend": "litert", "target": "cpu"}
    assert doc["manifest"]["targets"][1]["name"] == "ref" and doc["backends"]["onnxruntime"] is True


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_console_script_subprocess(add_bundle):
    proc = subprocess.run([sys.executable, "-m", "edgepack_runtime.cli", "info", str(add_bundle), "--json"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["manifest"]["model"]["name"] == "tiny"
    proc = subprocess.run([sys.executable, "-m", "edgepack_runtime.cli", "check", "/nonexistent.edgepack"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 6 and proc.stderr.startswith("error: no bundle at /nonexistent.edgepack")


def test_import_stays_light():
    code = ("import sys, edgepack_runtime, edgepack_runtime.cli, edgepack_runtime.runtime; "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('onnx', 'typer', 'edgepack', 'onnxruntime', 'ai_edge_litert', 'tflite_runtime', 'rich')); "
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_check_keeps_stderr_clean_of_litert_chatter(add_bundle):
    """LiteRT announces its XNNPACK delegate on fd 2; a device CLI (and a journal) must not carry it."""
    proc = subprocess.run([sys.executable, "-m", "edgepack_runtime.cli", "check", str(add_bundle), "--json",
                           "--backend", "litert"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"] == "litert"
    assert "XNNPACK" not in proc.stderr and proc.stderr == ""


def test_stderr_filter_keeps_other_native_lines():
    code = ("import os; from edgepack_runtime.backends.quiet import native_stderr_filtered, XNNPACK_INFO\n"
            "with native_stderr_filtered(XNNPACK_INFO):\n"
            "    os.write(2, b'WARNING: keep me\\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\nlast\\n')\n"
            "os.write(2, b'after\\n')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr == "WARNING: keep me\nlast\nafter\n"
