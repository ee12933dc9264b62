"""`edgepack inspect` shows what each target recorded: build cost per stage, compression, Neural Engine report."""
from __future__ import annotations

import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from typer.testing import CliRunner

from edgepack.build import build
from edgepack.cli.main import app
from edgepack_runtime.bundle import Bundle, write_bundle

RUNNER = CliRunner()


def _relu(path):
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, 4])], [h.make_tensor_value_info("y", TP.FLOAT, [1, 4])])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


def test_inspect_shows_stages_compression_and_the_ane_report(tmp_path):
    built = Bundle.open(build(_relu(tmp_path / "m.onnx"), targets=["cpu"]).path)
    files = {rel: built.read(rel) for rel in built.manifest["files"]}
    manifest = {k: v for k, v in built.manifest.items() if k != "files"}
    manifest["targets"][0]["compression"] = {"mode": "palettize4", "summary": "3 of 3 weights as 4-bit palettes"}
    manifest["targets"][0]["ane"] = {"verdict": "ane-risk", "findings": [
        {"rule": "fp16-overflow", "severity": "risk", "what": "max |x| beyond 65504", "count": 2,
         "where": ["conv10 (max |x| 1.2e+05)", "add3 (max |x| 7.0e+04)"]}]}
    path = write_bundle(tmp_path / "annotated.edgepack", manifest, files)
    result = RUNNER.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "cpu: compression palettize4: 3 of 3 weights as 4-bit palettes" in out
    assert "cpu: Neural Engine: ane-risk" in out
    assert ("risk: fp16-overflow (2) max |x| beyond 65504: conv10 (max |x| 1.2e+05), add3 (max |x| 7.0e+04)" in out)
    stages = [s["name"] for s in built.manifest["build"]["stages"]]
    assert stages[:3] == ["load", "calibration", "reference"], stages
    assert "build cost: load " in out and "verify:cpu" in out
