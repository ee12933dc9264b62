"""`edgepack build --precision int16x8` (TFLite 16x8) and `edgepack debug-quant --precision int16x8` from the
command line: built, verified in LiteRT against the tighter 16x8 gate, loaded and self-checked by the runtime."""
from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack_runtime import Runtime
from edgepack_runtime.precisions import PRECISIONS
from tests.tflite.test_int8 import mixed_net

RUNNER = CliRunner()


def _invoke(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_int16x8_build_verifies_and_self_checks(tmp_path):
    mixed_net(tmp_path / "m.onnx")
    x = np.random.default_rng(5).standard_normal((30, 1, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "c.npz", x=x)
    code, out, err = _invoke("build", tmp_path / "m.onnx", "--precision", "int16x8", "--calibration",
                             tmp_path / "c.npz", "--json", "-o", tmp_path / "m.edgepack")
    assert code == 0, err
    cpu = json.loads(out)["manifest"]["targets"][0]
    assert cpu["precision"] == "int16x8" and cpu["parity"]["passed"], cpu["parity"]
    assert cpu["parity"]["min_snr_db"] >= PRECISIONS["int16x8"].gate.min_snr_db
    q = cpu["quantization"]
    assert q["activations"] == "int16" and q["int16_ops"] >= 9 and q["float_layers"] == []
    assert all(r["bits"] == 16 for r in q["layers"] if r["int8"])
    assert cpu["latency_ms"]["mean"] > 0 and cpu["latency_ms"]["ratio_to_fp32"] > 0
    with Runtime.open(tmp_path / "m.edgepack") as rt:
        check = rt.self_check()
        assert check["passed"] and check["tolerance"]["min_cosine"] == 0.99, check
        y = rt.run({"x": x[0]})["y"]
        assert y.shape == (1, 10) and y.dtype == np.float32
    code, out, err = _invoke("debug-quant", tmp_path / "m.onnx", "--precision", "int16x8", "--calibration",
                             tmp_path / "c.npz", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["precision"] == "int16x8" and report["layers"] and report["parity"]["passed"]
