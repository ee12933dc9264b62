"""``edgepack inspect`` on a hand-made Qualcomm bundle: context binary (HTP arch, QNN SDK) or why there is none,
fraction of nodes on HTP, and the nodes left on CPU. No onnxruntime-qnn needed: inspect loads no model."""
from __future__ import annotations

import json

from typer.testing import CliRunner

import qnn_kit as k
from edgepack.cli.main import app

RUNNER = CliRunner()
CONTEXT = {"file": "models/qualcomm/model.ctx.onnx", "htp_arch": "75", "soc_model": "57",
           "sdk_version": "v2.51.0.260929181845", "ort_qnn": "2.7.0"}


def _inspect(tmp_path, qnn, *, ctx=b"ctx bytes", name="q.edgepack"):
    path = k.write(tmp_path / name, b"qdq bytes", qnn, ctx=ctx, samples=0)
    result = RUNNER.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    return [line.rstrip() for line in result.output.splitlines()]


def test_inspect_shows_context_binary_placement_and_cpu_nodes(tmp_path):
    lines = _inspect(tmp_path, k.qnn_block(CONTEXT))
    assert ("qualcomm: activations uint8, weights int8, per channel; built with onnxruntime 1.32.0, "
            "onnxruntime_qnn 2.7.0, qnn_sdk 2.51.0") in lines
    assert ("qualcomm: context binary models/qualcomm/model.ctx.onnx: HTP v75, SoC 57, QNN SDK 2.51.0 "
            "(onnxruntime-qnn 2.7.0)") in lines
    assert "qualcomm: placement: 71.4% of nodes on HTP (5 on HTP, 2 on CPU, 1 HTP partition(s))" in lines
    assert "qualcomm:   on CPU: x_QuantizeLinear (QuantizeLinear): graph input boundary" in lines
    assert "qualcomm:   on CPU: y_DequantizeLinear (DequantizeLinear): graph output boundary" in lines


def test_inspect_says_why_there_is_no_context_binary(tmp_path):
    qnn = k.qnn_block(None, reason="no QNN context binary: onnxruntime-qnn is not installed on the build host")
    lines = _inspect(tmp_path, qnn, ctx=None)
    assert "qualcomm: no QNN context binary: onnxruntime-qnn is not installed on the build host" in lines
    qnn["context_reason"] = None
    assert "qualcomm: the bundle has no context binary" in _inspect(tmp_path, qnn, ctx=None, name="r.edgepack")


def test_inspect_survives_a_malformed_qnn_block_and_keeps_markup_out(tmp_path):
    qnn = {"context": {"file": "models/qualcomm/model.ctx.onnx", "htp_arch": "[bold]x[/]", "sdk_version": 3},
           "placement": {"fraction_on_htp": "most", "cpu": [{"name": "[red]n[/]", "op_type": 7}, "junk"]},
           "per_channel": [1]}
    lines = _inspect(tmp_path, qnn)
    assert ("qualcomm: context binary not usable: manifest qnn.context.htp_arch '[bold]x[/]' is not an HTP "
            "version like \"75\"") in lines
    assert "qualcomm: placement: ? of nodes on HTP (? on HTP, ? on CPU)" in lines
    assert "qualcomm:   on CPU: [red]n[/] (7)" in lines


def test_inspect_json_carries_the_qnn_block(tmp_path):
    path = k.write(tmp_path / "q.edgepack", b"qdq bytes", k.qnn_block(CONTEXT), ctx=b"ctx bytes", samples=0)
    result = RUNNER.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0
    qnn = json.loads(result.output)["manifest"]["targets"][0]["qnn"]
    assert qnn["context"] == CONTEXT and qnn["placement"]["fraction_on_htp"] == 5 / 7
