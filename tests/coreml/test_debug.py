"""`edgepack debug-quant --target coreml`: the compressed program against its fp32 twin, layer by layer."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh
from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack.debug import debug_quant
from edgepack.errors import EdgepackError

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def two_convs(tmp_path_factory):
    """conv1's 9,216 weights are compressed; conv2's 2,048 stay fp16 (at coremltools' threshold)."""
    rng = np.random.default_rng(0)
    w1 = nh.from_array(rng.standard_normal((64, 16, 3, 3)).astype(np.float32), "W1")
    w2 = nh.from_array(rng.standard_normal((32, 64, 1, 1)).astype(np.float32) * 0.1, "W2")
    nodes = [h.make_node("Conv", ["x", "W1"], ["c"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("Relu", ["c"], ["r"], name="relu1"), h.make_node("Conv", ["r", "W2"], ["y"], name="conv2")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, [1, 16, 12, 12])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 32, 12, 12])], [w1, w2])
    path = tmp_path_factory.mktemp("dbg") / "two_convs.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize("precision,own_max,own_min", [("palettize4", 25.0, 15.0), ("w8", 50.0, 35.0)])
def test_each_layer_against_its_fp32_twin(two_convs, precision, own_max, own_min):
    report = debug_quant(two_convs, target="coreml", precision=precision)
    rows = {r["origin"]: r for r in report.layers if r["op"] == "conv"}
    assert set(rows) == {"conv1", "conv2"}
    assert rows["conv1"]["int8"] and own_min < rows["conv1"]["quant_snr_db"] < own_max, rows["conv1"]
    assert not rows["conv2"]["int8"] and "quant_snr_db" not in rows["conv2"]
    assert report.ranked[0]["origin"] == "conv1"
    assert rows["conv2"]["snr_db"] <= rows["conv1"]["snr_db"] + 1.0     # the error flows downstream
    assert report.parity["samples"] == 4 and report.precision == precision


def test_the_cli_table_and_json(two_convs):
    result = RUNNER.invoke(app, ["debug-quant", str(two_convs), "--target", "coreml", "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["target"] == "coreml" and out["precision"] == "palettize4" and out["culprits"][0] == "c"
    result = RUNNER.invoke(app, ["debug-quant", str(two_convs), "--target", "coreml", "--precision", "w8"])
    assert result.exit_code == 0, result.stderr
    assert "culprit: conv1 (conv): its own w8 SNR is" in " ".join(result.stdout.split())


def test_a_precision_the_debugger_cannot_examine(two_convs):
    with pytest.raises(EdgepackError, match="debug-quant --target coreml examines fp16, w8, .* not 'int8'"):
        debug_quant(two_convs, target="coreml", precision="int8")
    with pytest.raises(EdgepackError, match="debug-quant --target cpu examines int8, int16x8, not 'fp16'"):
        debug_quant(two_convs, target="cpu", precision="fp16")
