"""Tiny ONNX models and file writers for the calibration tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs],
                              [numpy_helper.from_array(v, k) for k, v in dict(inits).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def conv_model(shape=(1, 3, 8, 8), elem=F) -> onnx.ModelProto:
    """x [1, 3, 8, 8] -> Conv(2 filters, 3x3, same padding) -> y."""
    c = shape[1]
    w = np.ones((2, c, 3, 3), np.float32).astype(helper.tensor_dtype_to_np_dtype(elem))
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    return _model([node], [("x", elem, list(shape))], [("y", elem, [shape[0], 2, *shape[2:]])], {"w": w})


def unary_model(shape, elem=F, name="x") -> onnx.ModelProto:
    """A single input of any shape/dtype -> Identity."""
    return _model([helper.make_node("Identity", [name], ["y"])], [(name, elem, list(shape))],
                  [("y", elem, list(shape))])


def add_model(shape=(2, 3), elem=F) -> onnx.ModelProto:
    """a + b -> c, both inputs ``shape``."""
    return _model([helper.make_node("Add", ["a", "b"], ["c"])],
                  [("a", elem, list(shape)), ("b", elem, list(shape))], [("c", elem, list(shape))])


def numbered(n: int, shape, dtype=np.float32) -> np.ndarray:
    """[n, *shape] where sample i is filled with the value i (so samples are recognisable)."""
    return np.stack([np.full(shape, i, dtype) for i in range(n)])


def ids(samples, name: str) -> list[int]:
    """The sample numbers of per-sample dicts built from ``numbered``."""
    return [int(s[name].flat[0]) for s in samples]


def write_image(path: Path, pixels: np.ndarray) -> Path:
    """Save uint8 pixels ([H, W, 3] RGB or [H, W] gray) losslessly (format from the suffix)."""
    from PIL import Image
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return path
