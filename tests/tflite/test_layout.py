"""The layout policy: CNNs run NHWC with no TRANSPOSE ops; the public interface stays NCHW."""
import numpy as np
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts

RNG = np.random.default_rng(3)


def _w(name, shape):
    return nh.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _model(nodes, inits, x_shape=(1, 3, 8, 8)):
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, list(x_shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])


def test_preprocessing_before_the_first_conv_is_pulled_to_the_input():
    nodes = [h.make_node("Sub", ["x", "mean"], ["a"]), h.make_node("Div", ["a", "std"], ["b"]),
             h.make_node("Conv", ["b", "W"], ["y"], pads=[1, 1, 1, 1])]
    inits = [nh.from_array(np.array([0.4, 0.5, 0.6], np.float32).reshape(3, 1, 1), "mean"),
             nh.from_array(np.array([0.2, 0.25, 0.3], np.float32).reshape(3, 1, 1), "std"), _w("W", (4, 3, 3, 3))]
    res = assert_converts(_model(nodes, inits), max_transposes=0)
    assert res.io["inputs"][0]["perm"] == [0, 2, 3, 1]


def test_explicit_pad_before_conv_keeps_zero_transposes():
    nodes = [h.make_node("Conv", ["x", "W"], ["y"], pads=[0, 1, 2, 1])]
    res = assert_converts(_model(nodes, [_w("W", (4, 3, 3, 3))]), max_transposes=0)
    assert res.stats["op_histogram"]["PAD"] == 1


def test_residual_block_with_fan_out():
    nodes = [h.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "W2"], ["c2"], pads=[1, 1, 1, 1]), h.make_node("Add", ["c2", "r1"], ["s"]),
             h.make_node("Relu", ["s"], ["r2"]), h.make_node("Conv", ["r2", "W3"], ["c3"], pads=[1, 1, 1, 1]),
             h.make_node("Add", ["c3", "r2"], ["y"])]
    inits = [_w("W1", (8, 3, 3, 3)), _w("W2", (8, 8, 3, 3)), _w("W3", (8, 8, 3, 3))]
    res = assert_converts(_model(nodes, inits), max_transposes=0)
    assert res.stats["transpose_count_unoptimized"] == 6


def test_graph_output_in_the_middle_keeps_public_layout():
    """A tensor that is both a graph output and feeds further convs stays correct in NCHW."""
    nodes = [h.make_node("Conv", ["x", "W1"], ["mid"], pads=[1, 1, 1, 1]),
             h.make_node("Conv", ["mid", "W2"], ["y"], pads=[1, 1, 1, 1])]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None), h.make_tensor_value_info("mid", TP.FLOAT, None)],
                     [_w("W1", (4, 3, 3, 3)), _w("W2", (4, 4, 3, 3))])
    res = assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))
    assert res.stats["transpose_count"] <= 1


def test_constant_operand_is_permuted_at_build_time():
    nodes = [h.make_node("Conv", ["x", "W"], ["c"]), h.make_node("Mul", ["c", "scale"], ["m"]),
             h.make_node("Add", ["m", "bias"], ["y"])]
    inits = [_w("W", (4, 3, 1, 1)), _w("scale", (4, 1, 1)), _w("bias", (1, 4, 8, 8))]
    res = assert_converts(_model(nodes, inits), max_transposes=0)
    assert res.io["outputs"][0]["perm"] == [0, 2, 3, 1]


def test_flatten_before_classifier_permutes_fc_weights_instead_of_transposing():
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c"], ["r"]),
             h.make_node("Flatten", ["r"], ["f"]), h.make_node("Gemm", ["f", "FC", "B"], ["y"], transB=1)]
    inits = [_w("W", (4, 3, 3, 3)), _w("FC", (10, 4 * 8 * 8)), _w("B", (10,))]
    res = assert_converts(_model(nodes, inits), max_transposes=0)
    assert res.stats["op_histogram"]["FULLY_CONNECTED"] == 1
