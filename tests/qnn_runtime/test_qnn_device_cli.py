"""``edgepack-device`` on a Qualcomm bundle, in a fresh process each (as on a device): stdout stays clean JSON,
stderr holds nothing but our one fallback line, and run/check/info say how the model runs."""
import json
import os
import subprocess
import sys

import numpy as np
from qnn_kit import needs_qnn

import qnn_kit as k

pytestmark = needs_qnn
SIMULATED = "qnn only emulates its hardware on this x86_64 machine (ask for it: backend 'qnn')"


def _device(*args, arch=None):
    env = {key: v for key, v in os.environ.items() if key != "EDGEPACK_QNN_HTP_ARCH"}
    if arch:
        env["EDGEPACK_QNN_HTP_ARCH"] = arch
    proc = subprocess.run([sys.executable, "-m", "edgepack_runtime.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr      # json.loads: nothing but the JSON document on stdout


def test_run_check_info_report_the_context_binary(tmp_path, qdq8, ctx75):
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block()), ctx=ctx75)
    x = k.inputs(1, seed=11)[0]
    np.save(tmp_path / "x.npy", x)
    want = k.run_on_htp(qdq8, [x], htp_arch="75")[0]
    run, err = _device("run", path, "--input", tmp_path / "x.npy", "--output-dir", tmp_path / "out", "--json",
                       "--backend", "qnn")
    assert err == ""
    assert (run["backend"], run["backend_detail"], run["backend_reason"]) == ("qnn", "qnn-context", None)
    np.testing.assert_array_equal(np.load(run["outputs"]["y"]["file"]), want)
    check, err = _device("check", path, "--json", "--backend", "qnn")
    assert err == "" and check["passed"] and check["backend_detail"] == "qnn-context"
    info, err = _device("info", path, "--json")
    assert err == "" and info["backends"]["qnn"] is True
    # unasked, the x86-64 HTP simulator is passed over for onnxruntime on CPU, and info says why
    assert info["selected"] == {"backend": "onnxruntime", "target": "qualcomm"}
    assert info["plan"] == {"backend_detail": "onnxruntime-cpu", "backend_reason": SIMULATED}


def test_check_on_another_arch_falls_back_with_one_line_on_stderr(tmp_path, qdq8, ctx75):
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block()), ctx=ctx75)
    why = "it was compiled for HTP v75 but this device is HTP v73 (EDGEPACK_QNN_HTP_ARCH)"
    check, err = _device("check", path, "--json", "--backend", "qnn", arch="73")
    assert check["passed"] and (check["backend_detail"], check["backend_reason"]) == ("qnn-qdq", why)
    assert err == f"qnn: not using a context binary ({why}); running the QDQ model on HTP\n"


def test_info_text_shows_the_qnn_block(tmp_path, qdq8, ctx75):
    path = k.write(tmp_path / "q.edgepack", qdq8, k.qnn_block(k.context_block()), ctx=ctx75)
    proc = subprocess.run([sys.executable, "-m", "edgepack_runtime.cli", "info", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert "  target qualcomm: qnn w8a8  models/qualcomm/model.qdq.onnx (%d bytes)" % len(qdq8) in lines
    assert "    context binary models/qualcomm/model.ctx.onnx: HTP v75, SoC 57, QNN SDK 2.51.0 (onnxruntime-qnn " \
           "2.7.0)" in lines
    assert "    placement: 71.4% of nodes on HTP (5 on HTP, 2 on CPU, 1 HTP partition(s))" in lines
    assert "  would run: onnxruntime/qualcomm, as onnxruntime-cpu; " + SIMULATED in lines
