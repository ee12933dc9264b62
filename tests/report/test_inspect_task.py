"""``edgepack inspect`` names each output's kind and its task figures (a sigmoid map and a softmax here)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh
from typer.testing import CliRunner

from edgepack.cli.main import app


def _map_and_classes(path):
    rng = np.random.default_rng(3)
    inits = [nh.from_array(rng.standard_normal((1, 3, 3, 3)).astype(np.float32), "W"),
             nh.from_array(rng.standard_normal((768, 5)).astype(np.float32) * 0.1, "F")]
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Sigmoid", ["c"], ["map"]),
             h.make_node("Flatten", ["x"], ["f"]), h.make_node("MatMul", ["f", "F"], ["z"]),
             h.make_node("Softmax", ["z"], ["probs"], axis=-1)]
    g = h.make_graph(nodes, "m", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 16, 16])],
                     [h.make_tensor_value_info("map", TP.FLOAT, [1, 1, 16, 16]),
                      h.make_tensor_value_info("probs", TP.FLOAT, [1, 5])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


def test_inspect_prints_task_figures_of_a_map_and_of_class_probabilities(tmp_path):
    runner = CliRunner()
    model = _map_and_classes(tmp_path / "m.onnx")
    built = runner.invoke(app, ["build", str(model), "--target", "cpu", "--precision", "fp32"])
    assert built.exit_code == 0, built.output
    result = runner.invoke(app, ["inspect", str(tmp_path / "m.edgepack")])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    (map_line,) = [x for x in lines if x.startswith("cpu: output map (probability map): ")]
    figures = dict(part.split(" ") for part in map_line.split(": ", 2)[2].split(", "))
    assert set(figures) == {"iou_50", "iou_30", "region_recall", "region_precision", "max_prob_error"}
    assert float(figures["iou_50"]) == 1.0 and float(figures["max_prob_error"]) < 1e-3      # fp32: same map
    (probs_line,) = [x for x in lines if x.startswith("cpu: output probs (probabilities): ")]
    assert "max_prob_error" in probs_line
