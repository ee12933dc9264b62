"""Bad inputs and a missing onnxruntime-qnn: clear errors (what is wrong, what to do), nothing half-written."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnx
from onnx import TensorProto as TP
from edgepack_runtime.bundle import Bundle
from onnx import helper as h
from typer.testing import CliRunner

from edgepack.cli.main import app

from .kit import conv_net

RUNNER = CliRunner()
BLOCKER = '''
"""Test-only: make onnxruntime_qnn a missing package in this interpreter (import and find_spec both fail)."""
import sys


class _NoQnn:
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime_qnn" or name.startswith("onnxruntime_qnn."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoQnn())
'''
CLI = "import sys; from edgepack.cli.main import main; sys.argv[0] = 'edgepack'; main()"


def _without_qnn(tmp_path, *args) -> subprocess.CompletedProcess:
    site = tmp_path / "noqnn"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site)] + sys.path[1:]))
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_without_onnxruntime_qnn_the_build_ships_the_qdq_model_and_says_why(tmp_path):
    model = tmp_path / "cnn.onnx"
    onnx.save(conv_net(), model)
    done = _without_qnn(tmp_path, "build", model, "--target", "qualcomm", "--json")
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)["manifest"]["targets"]
    q = entry["qnn"]
    assert q["context"] is None and q["versions"] is None
    assert q["context_reason"].startswith("no QNN context binary: onnxruntime-qnn is not installed on the build "
                                          "host (pip install onnxruntime-qnn)")
    assert q["placement"]["estimated"] is True and q["placement"]["cpu"] == []
    assert entry["parity"]["passed"] and entry["parity"]["backend"] == "onnxruntime"    # CPU: the blocker blocks
    warning = " ".join(done.stderr.split())
    assert "warning: target 'qualcomm': no QNN context binary: onnxruntime-qnn is not installed" in warning
    listed = Bundle.open(tmp_path / "cnn.edgepack").manifest["files"]
    assert "models/qualcomm/model.qdq.onnx" in listed and "models/qualcomm/model.ctx.onnx" not in listed


def _invoke(*args):
    result = RUNNER.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_a_dynamic_shape_model_without_overrides_names_the_inputs_and_the_flag(tmp_path):
    m = conv_net()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    onnx.save(m, tmp_path / "dyn.onnx")
    code, _, err = _invoke("build", tmp_path / "dyn.onnx", "--target", "qualcomm")
    line = " ".join(err.split())
    assert code == 3, err
    assert "model has 2 dynamic dimension(s): x[0]=batch, x[2]=height" in line
    assert "fix them with --input-shape x=..." in line
    assert not (tmp_path / "dyn.edgepack").exists()


def _paddle_like(path) -> str:
    """Two inputs whose dynamic dims are all named '?' (as Paddle exports them): x [?, 3, ?, ?] and
    scale [?, 1]; fixing '?' by name would wrongly give every one of them the same value."""
    x = h.make_tensor_value_info("x", TP.FLOAT, ["?", 3, "?", "?"])
    s = h.make_tensor_value_info("scale", TP.FLOAT, ["?", 1])
    nodes = [h.make_node("GlobalAveragePool", ["x"], ["p"], name="gap"),
             h.make_node("Flatten", ["p"], ["f"], name="flat"),
             h.make_node("Mul", ["f", "scale"], ["y"], name="mul")]
    g = h.make_graph(nodes, "paddle", [x, s], [h.make_tensor_value_info("y", TP.FLOAT, ["?", 3])])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 11)]), path)
    return str(path)


def test_paddle_question_mark_dims_are_fixed_per_input_not_by_name(tmp_path):
    model = _paddle_like(tmp_path / "p.onnx")
    code, _, err = _invoke("build", model, "--target", "qualcomm", "--input-shape", "x=1,3,8,8")
    line = " ".join(err.split())
    assert code == 3 and "model has 1 dynamic dimension(s): scale[0]=?" in line, err   # x's '?' did not fix scale's
    code, out, err = _invoke("build", model, "--target", "qualcomm", "--input-shape", "x=1,3,8,8",
                             "--input-shape", "scale=1,1", "--json")
    assert code == 0, err
    manifest = json.loads(out)["manifest"]
    assert [(i["name"], i["shape"]) for i in manifest["inputs"]] == [("x", [1, 3, 8, 8]), ("scale", [1, 1])]
    assert manifest["targets"][0]["parity"]["passed"]
    assert np.isfinite(manifest["targets"][0]["parity"]["min_cosine"])
