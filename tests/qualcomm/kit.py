"""Tiny synthetic models and the fp32 reference for the Qualcomm tests."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgepack_runtime.backends import qnn_ep
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

needs_htp = pytest.mark.skipif(not qnn_ep.installed(), reason="onnxruntime-qnn (HTP simulator) is not installed")


def model(nodes, inits, inputs, outputs, opset=17) -> onnx.ModelProto:
    """A model from nodes, initializers (name -> array) and (name, shape) inputs / output names."""
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info(n, TP.FLOAT, s) for n, s in inputs],
                     [h.make_tensor_value_info(n, TP.FLOAT, None) for n in outputs],
                     [nh.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    return onnx.shape_inference.infer_shapes(m)


def samples(shape, n=4, seed=0, low=None, high=None) -> list[dict]:
    rng = np.random.default_rng(seed)
    if low is not None:
        return [{"x": rng.uniform(low, high, shape).astype(np.float32)} for _ in range(n)]
    return [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)]


def reference(m: onnx.ModelProto, feeds: list[dict]) -> list[list[np.ndarray]]:
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return [s.run(None, f) for f in feeds]


def max_rel_error(got, ref) -> float:
    """max |got - ref| / max |ref| over every sample and output."""
    err = max(float(np.abs(g - r).max()) for gs, rs in zip(got, ref) for g, r in zip(gs, rs))
    return err / max(float(np.abs(r).max()) for rs in ref for r in rs)


def conv_net(opset=17) -> onnx.ModelProto:
    """Conv -> Relu -> Conv -> GlobalAveragePool -> Flatten -> Gemm: a small CNN classifier on 1x3x16x16."""
    rng = np.random.default_rng(1)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32)
    fc = (rng.standard_normal((10, 16)) * 0.3).astype(np.float32)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("GlobalAveragePool", ["r2"], ["p"], name="gap"),
             h.make_node("Flatten", ["p"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "fc", "fcb"], ["y"], name="fc", transB=1)]
    inits = {"w1": w1, "b1": rng.standard_normal(8).astype(np.float32) * 0.1, "w2": w2,
             "b2": rng.standard_normal(16).astype(np.float32) * 0.1, "fc": fc,
             "fcb": rng.standard_normal((1, 10)).astype(np.float32)}
    return model(nodes, inits, [("x", [1, 3, 16, 16])], ["y"], opset=opset)


def erf_net() -> onnx.ModelProto:
    """Conv -> Erf -> Conv -> Relu on 1x8x8x8: Erf is an op HTP does not run (QNN EP refuses it)."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32)
    return model([h.make_node("Conv", ["x", "w"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
                  h.make_node("Erf", ["c1"], ["e"], name="erf"),
                  h.make_node("Conv", ["e", "w"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
                  h.make_node("Relu", ["c2"], ["y"], name="relu")], {"w": w}, [("x", [1, 8, 8, 8])], ["y"])
