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


def test_the_package_metadata_carries_the_build_name_and_version(tmp_path):
    import io
    import zipfile

    from coremltools.proto import Model_pb2

    from edgepack_runtime.bundle import Bundle
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="relu")], "graph_name",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, 4])], [h.make_tensor_value_info("y", TP.FLOAT, [1, 4])])
    path = tmp_path / "detector.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    b = Bundle.open(build(path, targets=["coreml"], version="2.3").path)
    with zipfile.ZipFile(io.BytesIO(b.read(b.manifest["targets"][0]["file"]))) as z:
        name = next(n for n in z.namelist() if n.endswith("model.mlmodel"))
        spec = Model_pb2.Model.FromString(z.read(name))
    meta = spec.description.metadata
    assert meta.author == "edgepack" and meta.versionString == "2.3"
    assert meta.shortDescription.startswith("detector: converted from ONNX by edgepack")
