"""``edgepack build --target qualcomm``: QDQ model + context binary + placement in the bundle, verified on the
HTP simulator through the runtime's ``qnn`` backend."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from edgepack_runtime import Runtime
from edgepack_runtime.backends import qnn_ep
from edgepack_runtime.bundle import Bundle
from typer.testing import CliRunner

from edgepack.build import build
from edgepack.cli.main import app
from edgepack.errors import EdgepackError

from .kit import conv_net, erf_net, needs_htp, samples

RUNNER = CliRunner()


def _save(m: onnx.ModelProto, path) -> str:
    onnx.save(m, path)
    return str(path)


@needs_htp
@pytest.mark.parametrize("precision,activations", [("w8a8", "uint8"), ("w8a16", "uint16")])
def test_build_makes_a_verified_qdq_model_and_a_context_binary(tmp_path, precision, activations):
    result = build(_save(conv_net(), tmp_path / "cnn.onnx"), targets=["qualcomm"], precision=precision,
                   out=tmp_path / "cnn.edgepack")
    (entry,) = result.manifest["targets"]
    assert (entry["name"], entry["format"], entry["precision"]) == ("qualcomm", "qnn", precision)
    assert entry["file"] == "models/qualcomm/model.qdq.onnx"
    assert entry["parity"]["passed"] and entry["parity"]["backend"] == "qnn" and entry["parity"]["samples"] == 8
    assert entry["parity"]["min_cosine"] > 0.99
    q = entry["qnn"]
    assert (q["activations"], q["weights"], q["per_channel"], q["overrides"]) == (activations, "int8", True, {})
    assert q["versions"] == qnn_ep.versions() and q["context_reason"] is None
    ctx = q["context"]
    assert ctx["file"] == "models/qualcomm/model.ctx.onnx" and (ctx["htp_arch"], ctx["soc_model"]) == ("75", "57")
    assert ctx["sdk_version"].startswith("v" + qnn_ep.versions()["qnn_sdk"]) and ctx["compile_seconds"] > 0
    assert q["device"]["source"].startswith("default: no device profile names an HTP")
    assert q["placement"] == {"htp_nodes": 5, "cpu_nodes": 0, "fraction_on_htp": 1.0, "partitions": 1, "cpu": []}
    assert result.warnings == [w for w in result.warnings if "qualcomm" not in w]
    bundle = Bundle.open(result.path)
    ctx_model = onnx.load_model_from_string(bundle.read(ctx["file"]))
    assert [n.op_type for n in ctx_model.graph.node].count("EPContext") == 1
    qdq = onnx.load_model_from_string(bundle.read(entry["file"]))
    assert sum(n.op_type == "QuantizeLinear" for n in qdq.graph.node) >= 3
    with Runtime.open(result.path, backend="qnn") as rt:           # on x86-64 the simulator runs when asked
        assert (rt.backend_name, rt.backend_detail) == ("qnn", "qnn-context")
        y = rt.run({"x": np.ones((1, 3, 16, 16), np.float32)})["y"]
        assert y.shape == (1, 10) and np.isfinite(y).all()
        assert rt.self_check()["passed"]


@needs_htp
def test_the_device_profile_chooses_the_htp_and_the_precision(tmp_path):
    result = build(_save(conv_net(), tmp_path / "cnn.onnx"), targets=["snapdragon-8-gen3"],
                   samples=samples([1, 3, 16, 16], n=6), out=tmp_path / "cnn.edgepack")
    entries = {t["name"]: t for t in result.manifest["targets"]}
    assert list(entries) == ["qualcomm", "cpu"] and entries["qualcomm"]["precision"] == "w8a8"
    q = entries["qualcomm"]["qnn"]
    assert q["device"] == {"htp_arch": "75", "soc_model": "57", "source": "device profile snapdragon-8-gen3"}
    assert entries["qualcomm"]["devices"] == ["snapdragon-8-gen3"]


@needs_htp
def test_require_npu_fails_listing_the_nodes_htp_cannot_run(tmp_path):
    model = _save(erf_net(), tmp_path / "erf.onnx")
    feeds = samples([1, 8, 8, 8], n=4)
    with pytest.raises(EdgepackError) as err:
        build(model, targets=["qualcomm"], samples=feeds, require_npu=True, out=tmp_path / "erf.edgepack")
    assert "--require-npu: 1 node(s) of target 'qualcomm' would run on CPU instead of the NPU: Erf 'erf' " \
           "(Operators of type `Erf` are not supported by QNN EP.)" in str(err.value)
    assert not (tmp_path / "erf.edgepack").exists()
    result = build(model, targets=["qualcomm"], samples=feeds, out=tmp_path / "erf.edgepack")
    p = result.manifest["targets"][0]["qnn"]["placement"]
    assert (p["htp_nodes"], p["cpu_nodes"], p["partitions"]) == (2, 1, 2) and p["cpu"][0]["name"] == "erf"
    ok = build(_save(conv_net(), tmp_path / "cnn.onnx"), targets=["qualcomm"], samples=samples([1, 3, 16, 16]),
               require_npu=True, out=tmp_path / "cnn.edgepack")
    assert ok.manifest["targets"][0]["qnn"]["placement"]["fraction_on_htp"] == 1.0


@needs_htp
def test_keep_float_names_a_node_and_the_manifest_lists_it(tmp_path):
    from edgepack.targets.base import QuantOptions
    result = build(_save(conv_net(), tmp_path / "cnn.onnx"), targets=["qualcomm"], samples=samples([1, 3, 16, 16]),
                   quant=QuantOptions(keep_float=("gap",)), out=tmp_path / "cnn.edgepack")
    assert result.manifest["targets"][0]["qnn"]["overrides"] == {"gap": "float"}
    with pytest.raises(EdgepackError, match="--keep-float names no node or tensor of the model: nope"):
        build(_save(conv_net(), tmp_path / "cnn.onnx"), targets=["qualcomm"], samples=samples([1, 3, 16, 16]),
              quant=QuantOptions(keep_float=("nope",)), out=tmp_path / "cnn.edgepack")


def _invoke(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@needs_htp
def test_the_cli_builds_with_require_npu_and_json(tmp_path):
    model = _save(erf_net(), tmp_path / "erf.onnx")
    code, _, err = _invoke("build", model, "--target", "qualcomm", "--require-npu")
    assert code == 1 and "--require-npu: 1 node(s)" in " ".join(err.split()), err
    code, out, err = _invoke("build", _save(conv_net(), tmp_path / "cnn.onnx"), "--target", "qualcomm",
                             "--precision", "qualcomm=w8a16", "--require-npu", "--json")
    assert code == 0, err
    (entry,) = json.loads(out)["manifest"]["targets"]
    assert entry["precision"] == "w8a16" and entry["qnn"]["placement"]["cpu"] == []


def test_ops_and_targets_list_qualcomm_from_the_measured_table():
    code, out, err = _invoke("ops", "--target", "qualcomm", "--json")
    assert code == 0, err
    rows = {r["op_type"]: r for r in json.loads(out)}
    assert {"Conv", "Gemm", "MatMul", "Softmax", "Relu", "Add"} <= set(rows) and "Erf" not in rows
    assert rows["Conv"]["notes"].startswith("ran wholly on HTP in ")
    code, out, err = _invoke("targets", "--json")
    row = {r["name"]: r for r in json.loads(out)}["qualcomm"]
    assert (row["format"], row["precisions"], row["default_precision"]) == ("qnn", ["w8a8", "w8a16"], "w8a8")
    assert row["available"] is True and row["op_table"] is True
    assert row["backend"] == ("qnn" if qnn_ep.installed() else "onnxruntime")


@needs_htp
def test_a_build_that_misses_the_gate_at_w8a8_gets_mixed_precision(tmp_path):
    from .test_mixed import outlier_net
    feeds = [{"x": np.random.default_rng(i).standard_normal((1, 8, 16, 16)).astype(np.float32)} for i in range(10)]
    result = build(_save(outlier_net(), tmp_path / "spike.onnx"), targets=["qualcomm"], samples=feeds,
                   out=tmp_path / "spike.edgepack")
    (entry,) = result.manifest["targets"]
    q = entry["qnn"]
    assert entry["parity"]["passed"] and q["mixed_precision"]["passed"]
    assert q["overrides"] == {"conv1": "a16", "relu1": "a16"}
    qdq = onnx.load_model_from_string(Bundle.open(result.path).read(entry["file"]))
    zps = {t.name: t.data_type for t in qdq.graph.initializer}
    types = {n.input[0]: zps[n.input[2]] for n in qdq.graph.node if n.op_type == "QuantizeLinear"}
    assert types["ar"] == onnx.TensorProto.UINT16 and types["br"] == onnx.TensorProto.UINT8


def test_debug_quant_shows_the_qualcomm_layer_table(tmp_path):
    code, out, err = _invoke("debug-quant", _save(conv_net(), tmp_path / "cnn.onnx"), "--target", "qualcomm",
                             "--json")
    assert code == 0, err
    table = json.loads(out)
    assert table["precision"] == "w8a8" and len(table["layers"]) >= 4
