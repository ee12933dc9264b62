"""Quantized ONNX in, qualcomm target: a QDQ model from onnxruntime's quantize_static (uint8 or int8 activations)
is quantized again for HTP from its float twin with its own activation ranges, so the shipped scales are the
model's; verified on the HTP simulator against onnxruntime running the quantized model itself. Plus: ``--json``
stdout stays parseable although the QNN SDK prints to file descriptor 1."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from edgepack_runtime.bundle import Bundle
from onnx import numpy_helper

from edgepack.build import build
from edgepack.errors import UnsupportedOpsError
from edgepack.model import load_model
from edgepack.model.qdq import dequantize
from edgepack.targets.qualcomm.target import TARGET
from tests.tflite.qdq_models import conv_net, hand_qdq, quantized

from .kit import needs_htp

pytestmark = pytest.mark.forked


def _samples(n=8, seed=9):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(n)]


def _shipped_scales(bundle_path) -> dict[str, tuple[float, int, int]]:
    """tensor -> (scale, zero point, zero point's TensorProto type) of the shipped QDQ model's QuantizeLinear."""
    b = Bundle.open(bundle_path)
    qdq = onnx.load_model_from_string(b.read(b.target("qualcomm")["file"]))
    inits = {t.name: t for t in qdq.graph.initializer}
    out = {}
    for n in qdq.graph.node:
        if n.op_type == "QuantizeLinear":
            zp = inits[n.input[2]]
            out[n.input[0]] = (float(numpy_helper.to_array(inits[n.input[1]])), int(numpy_helper.to_array(zp)),
                               zp.data_type)
    return out


@needs_htp
@pytest.mark.parametrize("activations", ["QUInt8", "QInt8"])
def test_w8a8_ships_the_models_own_activation_scales(tmp_path, activations):
    path = quantized(conv_net(), tmp_path, activations=activations)
    res = build(path, targets=["qualcomm"], precision="w8a8", samples=_samples(), out=tmp_path / "b.edgepack")
    t = res.manifest["targets"][0]
    q = t["qnn"]["quantized_in"]
    assert q["dequantized"]["left"] == 0 and q["activation_types"] == [activations[1:].lower()]
    assert q["int8_weights_in_model"] == 3 and q["weight_grid_kept"] == 3     # symmetric per-channel: same integers
    assert q["activation_ranges_used"] >= 6
    p = t["parity"]
    assert p["passed"] and p["backend"] == "qnn"
    assert p["min_cosine"] > 0.999 and p["max_rel_error"] < 0.03        # against onnxruntime on the QDQ model
    _, info = dequantize(load_model(path))
    shipped = _shipped_scales(res.path)
    same = 0
    for name, a in info.activations.items():
        if name in shipped:
            scale, zp, zp_type = shipped[name]
            assert zp_type == onnx.TensorProto.UINT8            # HTP takes uint8 activations
            want_zp = a.zero_point + (128 if a.dtype == "int8" else 0)     # the int8 grid moved onto uint8
            same += abs(scale - a.scale) <= 1e-6 * a.scale and zp == want_zp
    assert same >= q["activation_ranges_used"] - 2 and same >= 6


@needs_htp
def test_w8a16_spans_the_models_ranges_with_16_bits(tmp_path):
    path = quantized(conv_net(), tmp_path)
    res = build(path, targets=["qualcomm"], precision="w8a16", samples=_samples(), out=tmp_path / "b.edgepack")
    t = res.manifest["targets"][0]
    assert t["parity"]["passed"] and t["qnn"]["quantized_in"]["activation_ranges_used"] >= 6
    _, info = dequantize(load_model(path))
    shipped = _shipped_scales(res.path)
    finer = [name for name, a in info.activations.items() if name in shipped
             and abs(shipped[name][0] * 65535 - a.scale * 255) <= 1e-3 * a.scale * 255]
    assert len(finer) >= 6           # the same interval, 257x finer


def test_a_quantized_graph_input_is_refused_with_what_to_do(tmp_path):
    onnx.save(hand_qdq("input"), str(tmp_path / "input.onnx"))
    with pytest.raises(UnsupportedOpsError) as err:
        TARGET.preflight(load_model(tmp_path / "input.onnx"))
    assert err.value.target == "qualcomm" and len(err.value.problems) == 1
    assert "re-export with a float input" in err.value.problems[0]["reason"]


@needs_htp
def test_json_stdout_is_only_json(tmp_path):
    """The QNN SDK writes a line to file descriptor 1 when it loads; `--json` must still print one JSON document."""
    path = tmp_path / "cnn.onnx"
    onnx.save(conv_net(), str(path))
    run = subprocess.run([sys.executable, "-m", "edgepack.cli.main", "build", str(path), "--target", "qualcomm",
                          "-o", str(tmp_path / "b.edgepack"), "--json"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(run.stdout)
    assert doc["manifest"]["targets"][0]["name"] == "qualcomm"
