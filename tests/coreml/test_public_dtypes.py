"""A Core ML bundle answers in the ONNX model's dtypes: Core ML computes int64 outputs (ArgMax) in int32."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h

from edgepack.build import build
from edgepack_runtime import Runtime


def test_an_int64_output_comes_back_int64(tmp_path):
    g = h.make_graph([h.make_node("ArgMax", ["x"], ["i"], axis=1, keepdims=0, name="argmax")], "g",
                     [h.make_tensor_value_info("x", TP.FLOAT, [2, 10])], [h.make_tensor_value_info("i", TP.INT64, [2])])
    path = tmp_path / "argmax.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    bundle = build(path, targets=["coreml"], precision="fp32").path
    x = np.array([[0, 1, 9, 2, 0, 0, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0, 0, 0, 0, 7]], np.float32)
    with Runtime.open(bundle, backend="coreml-reference") as rt:
        got = rt.run({"x": x})["i"]
    assert got.dtype == np.int64 and got.tolist() == [2, 9]
