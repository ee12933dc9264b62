"""The qnn backend on the HTP simulator: context binary first when it fits, the QDQ model next, CPU last.

Reference outputs are computed before the runtime opens its session: on the simulator (onnxruntime-qnn 2.7.0),
creating a QNN session from a plain model breaks every context-binary session opened before it in the process
(QNN_COMMON_ERROR_GENERAL, code 1100, at the next run).
"""
import logging
import platform
import sys

import numpy as np
import pytest
from qnn_kit import needs_qnn

import qnn_kit as k
from edgepack_runtime.bundle import Bundle, unpack_bundle
from edgepack_runtime.errors import BundleError
from edgepack_runtime.runtime import Runtime

pytestmark = needs_qnn
FEEDS = k.inputs(3, seed=11)
LOGGER = "edgepack_runtime.qnn"


def _open(path, caplog, **kw):
    kw.setdefault("backend", "qnn")     # on x86-64 the HTP simulator runs only when asked for
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        rt = Runtime.open(path, **kw)
    return rt, [r for r in caplog.records if r.name == LOGGER]


def _outputs(rt):
    return [rt.run({"x": x})["y"] for x in FEEDS]


def _same(got, want):
    for g, w in zip(got, want):
        assert g.shape == tuple(k.SHAPE_OUT) and g.dtype == np.float32
        np.testing.assert_array_equal(g, w)


def test_context_binary_loads_and_matches_the_qdq_model_on_htp(tmp_path, qdq8, ctx75, caplog):
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block()), ctx=ctx75)
    want, want_ctx = k.run_on_htp(qdq8, FEEDS, htp_arch="75"), k.run_on_htp(ctx75, FEEDS, htp_arch="75")
    rt, logs = _open(path, caplog)
    with rt:
        assert (rt.backend_name, rt.backend_detail, rt.backend_reason) == ("qnn", "qnn-context", None)
        got = _outputs(rt)
        report = rt.self_check()
    assert logs == []
    _same(got, want)   # the same chip emulated: bit-exact
    _same(got, want_ctx)
    assert report["passed"] and report["backend_detail"] == "qnn-context" and report["samples"] == 2
    assert 0.999 < report["outputs"]["y"]["cosine"] < 1.0     # quantized, judged against the fp32 reference


def test_context_for_another_htp_arch_falls_back_with_one_logged_reason(tmp_path, qdq8, monkeypatch, caplog):
    ctx73 = k.compile_context(qdq8, "73", "43")
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block(htp_arch="73", soc_model="43")),
                   ctx=ctx73)
    monkeypatch.setenv("EDGEPACK_QNN_HTP_ARCH", "v75")
    rt, logs = _open(path, caplog)
    with rt:
        why = "it was compiled for HTP v73 but this device is HTP v75 (EDGEPACK_QNN_HTP_ARCH)"
        assert (rt.backend_detail, rt.backend_reason) == ("qnn-qdq", why)
        got = _outputs(rt)
    assert [(r.levelno, r.getMessage()) for r in logs] == [
        (logging.WARNING, f"qnn: not using a context binary ({why}); running the QDQ model on HTP")]
    _same(got, k.run_on_htp(qdq8, FEEDS, htp_arch="75"))


def test_context_from_another_qnn_sdk_falls_back(tmp_path, qdq8, ctx75, caplog):
    block = k.qnn_block(k.context_block(sdk_version="v2.50.0.250801"))
    path = k.write(tmp_path / "q.edgepack", qdq8, block, ctx=ctx75)
    rt, logs = _open(path, caplog)
    with rt:
        got = _outputs(rt)
        assert rt.backend_detail == "qnn-qdq"
    assert len(logs) == 1 and logs[0].levelno == logging.WARNING
    assert ("it was compiled with QNN SDK 2.50.0 (v2.50.0.250801) but the installed onnxruntime-qnn carries "
            "QNN SDK 2.51.0") in logs[0].getMessage()
    _same(got, k.run_on_htp(qdq8, FEEDS, htp_arch="75"))   # the QDQ model emulates the binary's chip


def test_manifest_that_misdescribes_its_binary_falls_back(tmp_path, qdq8, ctx75, caplog):
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block(htp_arch="73")), ctx=ctx75)
    rt, logs = _open(path, caplog)
    with rt:
        assert rt.backend_detail == "qnn-qdq"
        assert rt.backend_reason == ("the binary says QNN SDK 2.51.0, HTP v75 but the manifest says "
                                     "QNN SDK 2.51.0, HTP v73")
        _same(_outputs(rt), k.run_on_htp(qdq8, FEEDS, htp_arch="73"))
    assert len(logs) == 1


def test_garbage_context_file_with_a_valid_hash_falls_back(tmp_path, qdq8, caplog, capfd):
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block()), ctx=b"not an onnx model\n" * 64)
    rt, logs = _open(path, caplog)
    with rt:
        assert rt.backend_detail == "qnn-qdq"
        assert rt.backend_reason.startswith("onnxruntime could not load it: [ONNXRuntimeError] : 7 : "
                                            "INVALID_PROTOBUF")
        _same(_outputs(rt), k.run_on_htp(qdq8, FEEDS, htp_arch="75"))
    assert len(logs) == 1 and "INVALID_PROTOBUF" in logs[0].getMessage()
    assert "onnxruntime" not in capfd.readouterr().err    # onnxruntime's own error print is silenced


def test_context_file_with_a_wrong_hash_is_refused_by_the_bundle(tmp_path, qdq8, ctx75):
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block()), ctx=ctx75)
    folder = unpack_bundle(path, tmp_path / "unpacked")
    member = folder / "models/qualcomm/model.ctx.onnx"
    data = bytearray(member.read_bytes())
    data[len(data) // 2] ^= 0xFF
    member.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"models/qualcomm/model.ctx.onnx is corrupt: sha256 mismatch"):
        Bundle.open(folder)


def test_no_context_binary_runs_the_qdq_model_and_says_why(tmp_path, qdq8, caplog):
    reason = "no QNN context binary: onnxruntime-qnn is not installed on the build host"
    rt, logs = _open(k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(None, reason=reason)), caplog)
    with rt:
        assert (rt.backend_detail, rt.backend_reason) == ("qnn-qdq", reason)
        _same(_outputs(rt), k.run_on_htp(qdq8, FEEDS, htp_arch=None))
    assert [r.levelno for r in logs] == [logging.INFO]     # nothing went wrong: not a warning


def test_w8a16_context_binary(tmp_path):
    qdq16 = k.qdq_model("uint16")
    ctx = k.compile_context(qdq16)
    path = k.write(tmp_path / "q.edgepack", qdq16, k.qnn_block(k.context_block(), activations="uint16"), ctx=ctx,
                   precision="w8a16")
    want = k.run_on_htp(qdq16, FEEDS, htp_arch="75")
    with Runtime.open(path, backend="qnn") as rt:
        assert rt.backend_detail == "qnn-context"
        _same(_outputs(rt), want)
        report = rt.self_check()
    assert report["passed"] and report["tolerance"] == {"rtol": 0.05, "atol": 0.01, "min_cosine": 0.99}
    assert report["outputs"]["y"]["cosine"] > 0.999 and report["outputs"]["y"]["max_rel"] < 0.1


def test_onnxruntime_cpu_runs_the_qdq_model_when_forced(tmp_path, qdq8, ctx75):
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block()), ctx=ctx75)
    with Runtime.open(path, backend="onnxruntime") as rt:
        assert (rt.backend_name, rt.backend_detail) == ("onnxruntime", "onnxruntime-cpu")
        assert rt.backend_reason == "backend onnxruntime was asked for (preferred for qnn: qnn)"
        got = _outputs(rt)
        _same(got, k.run_on_cpu(qdq8, FEEDS))
        assert rt.self_check()["passed"]
    # what the model defines, on any CPU: on x86 without VNNI onnxruntime's fused u8s8 kernels saturate (up to
    # 0.47 off here, and the self-check failed); there the runtime runs the Q/DQ nodes unfused
    for g, want in zip(got, k.run_on_cpu(qdq8, FEEDS, defined=True)):
        cos = float(np.dot(g.ravel(), want.ravel()) / (np.linalg.norm(g) * np.linalg.norm(want)))
        assert cos > 0.999 and np.abs(g - want).max() <= 0.05 * np.abs(want).max()


def test_onnxruntime_cpu_runs_the_qdq_model_without_onnxruntime_qnn(tmp_path, qdq8, ctx75, monkeypatch):
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block()), ctx=ctx75)
    monkeypatch.setitem(sys.modules, "onnxruntime_qnn", None)     # as if the package were not installed
    with Runtime.open(path) as rt:
        assert (rt.backend_name, rt.backend_detail) == ("onnxruntime", "onnxruntime-cpu")
        assert rt.backend_reason == "qnn is not installed (pip install onnxruntime-qnn)"
        _same(_outputs(rt), k.run_on_cpu(qdq8, FEEDS))


def test_the_simulator_is_not_chosen_unasked_on_x86(tmp_path, qdq8, ctx75):
    """On x86-64 onnxruntime-qnn holds the HTP simulator: a bundle opened without a backend runs on CPU and says
    how to get the simulator."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("only x86-64 wheels of onnxruntime-qnn hold the simulator")
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block()), ctx=ctx75)
    with Runtime.open(path) as rt:
        assert (rt.backend_name, rt.backend_detail) == ("onnxruntime", "onnxruntime-cpu")
        assert rt.backend_reason == ("qnn only emulates its hardware on this x86_64 machine "
                                     "(ask for it: backend 'qnn')")
        _same(_outputs(rt), k.run_on_cpu(qdq8, FEEDS))
