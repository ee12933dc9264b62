"""fp16 and dynamic-range int8 weights: smaller files, close numerics, the expected TFLite structure."""
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.targets.tflite import convert
from edgepack_runtime.compare import compare_output, passes
from edgepack_runtime.precisions import PRECISIONS

from .harness import random_feeds, run_onnx, run_tflite

RNG = np.random.default_rng(5)


def _cnn():
    inits = [nh.from_array(RNG.standard_normal(s).astype(np.float32) * 0.1, n) for n, s in
             (("W1", (64, 3, 3, 3)), ("W2", (64, 64, 3, 3)), ("FC", (10, 64)), ("B", (10,)))]
    nodes = [h.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "W2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             h.make_node("Relu", ["c2"], ["r2"]), h.make_node("GlobalAveragePool", ["r2"], ["g"]),
             h.make_node("Flatten", ["g"], ["f"]), h.make_node("Gemm", ["f", "FC", "B"], ["y"], transB=1)]
    g = h.make_graph(nodes, "cnn", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 16, 16])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 10])], inits)
    import onnx
    return onnx.shape_inference.infer_shapes(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))


def _tensor_types(data: bytes) -> list[int]:
    m = fb.ModelT.InitFromPackedBuf(data, 0)
    return [t.type for t in m.subgraphs[0].tensors]


@pytest.mark.parametrize("precision,max_ratio,weight_type", [("fp16", 0.55, fb.TensorType.FLOAT16),
                                                              ("int8-dynamic", 0.35, fb.TensorType.INT8)])
def test_compressed_weights(precision, max_ratio, weight_type):
    model = _cnn()
    fp32 = convert(model)
    small = convert(model, precision=precision)
    assert len(small.data) <= max_ratio * len(fp32.data)
    assert weight_type in _tensor_types(small.data)
    if precision == "fp16":
        assert small.stats["op_histogram"]["DEQUANTIZE"] == small.stats["compressed_weights"]["fp16"] == 2
    else:
        assert small.stats["compressed_weights"]["int8"] == 2 and "DEQUANTIZE" not in small.stats["op_histogram"]
    feeds = [random_feeds(model, seed) for seed in range(4)]
    got = [run_tflite(small, f)["y"] for f in feeds]
    ref = [run_onnx(model, f)["y"] for f in feeds]
    figures = compare_output(got, ref)
    assert passes(figures, PRECISIONS[precision].gate), figures
    assert figures["rel_error"] > 0                     # it really is a different (compressed) model


def test_int8_scales_are_per_output_channel():
    small = convert(_cnn(), precision="int8-dynamic")
    m = fb.ModelT.InitFromPackedBuf(small.data, 0)
    q = [t for t in m.subgraphs[0].tensors if t.type == fb.TensorType.INT8]
    assert sorted(len(t.quantization.scale) for t in q) == [64, 64]
    assert all(t.quantization.quantizedDimension == 0 for t in q)


@pytest.mark.parametrize("precision", ["fp16", "int8-dynamic"])
def test_a_wide_bias_stays_float32_and_the_model_loads_in_xnnpack(precision):
    """A transformer feed-forward: MatMul [1, 8, 64] x [64, 1536] + a 1,536-wide bias. Its bias compressed to
    fp16 (a DEQUANTIZE in front of the hybrid FULLY_CONNECTED) made XNNPACK fail to prepare the int8-dynamic
    model (MiniLM did not load). The bias stays float32; the weights are compressed."""
    rng = np.random.default_rng(7)
    inits = [nh.from_array((rng.standard_normal((64, 1536)) * 0.1).astype(np.float32), "W"),
             nh.from_array((rng.standard_normal(1536) * 0.1).astype(np.float32), "B")]
    nodes = [h.make_node("MatMul", ["x", "W"], ["m"]), h.make_node("Add", ["m", "B"], ["y"])]
    g = h.make_graph(nodes, "ffn", [h.make_tensor_value_info("x", TP.FLOAT, [1, 8, 64])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 8, 1536])], inits)
    import onnx
    model = onnx.shape_inference.infer_shapes(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))
    small = convert(model, precision=precision)
    m = fb.ModelT.InitFromPackedBuf(small.data, 0)
    wide = [t for t in m.subgraphs[0].tensors if t.shape is not None and list(t.shape) == [1536]]
    assert [t.type for t in wide] == [fb.TensorType.FLOAT32]            # the bias, float32, used directly
    assert "DEQUANTIZE" not in small.stats["op_histogram"] or precision == "fp16"
    feeds = [random_feeds(model, seed) for seed in range(3)]
    got = [run_tflite(small, f)["y"] for f in feeds]                     # XNNPACK prepares and runs it
    ref = [run_onnx(model, f)["y"] for f in feeds]
    figures = compare_output(got, ref)
    assert passes(figures, PRECISIONS[precision].gate), figures
