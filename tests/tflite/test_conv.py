import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts

RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, inits, opset=17):
    g = h.make_graph(nodes, "t", inputs, outputs, inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _w(name, shape):
    return nh.from_array(RNG.standard_normal(shape).astype(np.float32), name)


@pytest.mark.parametrize("cin,cout,group,k,attrs", [
    (3, 8, 1, 3, dict(pads=[1, 1, 1, 1])),
    (3, 8, 1, 3, dict(strides=[2, 2])),
    (3, 8, 1, 3, dict(pads=[0, 1, 2, 1], strides=[2, 1])),
    (4, 8, 1, 3, dict(dilations=[2, 2], pads=[2, 2, 2, 2])),
    (4, 8, 1, 3, dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    (4, 8, 1, 3, dict(auto_pad="SAME_LOWER", strides=[2, 2])),
    (4, 8, 1, 3, dict(auto_pad="VALID")),
    (8, 8, 8, 3, dict(pads=[1, 1, 1, 1])),            # depthwise
    (8, 16, 8, 3, dict(pads=[1, 1, 1, 1], strides=[2, 2])),  # depthwise, multiplier 2
    (6, 9, 3, 3, dict(pads=[1, 1, 1, 1])),            # grouped
    (4, 8, 1, 1, dict()),
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(cin, cout, group, k, attrs, bias):
    ins = ["x", "W"] + (["B"] if bias else [])
    inits = [_w("W", (cout, cin // group, k, k))] + ([_w("B", (cout,))] if bias else [])
    m = _model([h.make_node("Conv", ins, ["y"], group=group, **attrs)],
               [h.make_tensor_value_info("x", TP.FLOAT, [1, cin, 11, 12])],
               [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    res = assert_converts(m, max_transposes=0)
    assert res.io["inputs"][0]["perm"] == [0, 2, 3, 1]
    assert res.io["outputs"][0]["perm"] == [0, 2, 3, 1]  # internal = transpose(public, perm)


def test_conv1d():
    m = _model([h.make_node("Conv", ["x", "W"], ["y"], pads=[1, 2], strides=[2])],
               [h.make_tensor_value_info("x", TP.FLOAT, [2, 4, 20])],
               [h.make_tensor_value_info("y", TP.FLOAT, None)], [_w("W", (6, 4, 3))])
    assert_converts(m)


@pytest.mark.parametrize("attrs", [
    dict(strides=[2, 2]),
    dict(strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(strides=[2, 2], pads=[0, 0, 1, 1], output_padding=[1, 1]),
    dict(strides=[3, 2], output_shape=[14, 10]),
    dict(dilations=[2, 2]),
])
def test_conv_transpose(attrs):
    m = _model([h.make_node("ConvTranspose", ["x", "W", "B"], ["y"], **attrs)],
               [h.make_tensor_value_info("x", TP.FLOAT, [1, 4, 5, 5])],
               [h.make_tensor_value_info("y", TP.FLOAT, None)], [_w("W", (4, 3, 3, 3)), _w("B", (3,))])
    assert_converts(m, max_transposes=0)


def test_cnn_chain_has_no_transposes():
    nodes = [h.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "W2"], ["c2"], pads=[1, 1, 1, 1]),
             h.make_node("Add", ["c2", "r1"], ["a"]),
             h.make_node("Mul", ["a", "S"], ["y"])]
    m = _model(nodes, [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
               [h.make_tensor_value_info("y", TP.FLOAT, None)],
               [_w("W1", (8, 3, 3, 3)), _w("W2", (8, 8, 3, 3)), _w("S", (8, 1, 1))])
    res = assert_converts(m, max_transposes=0)
    assert res.stats["op_histogram"].get("RELU") is None  # fused into the first CONV_2D


def test_conv_transpose_grouped():
    m = _model([h.make_node("ConvTranspose", ["x", "W", "B"], ["y"], group=2, strides=[2, 2])],
               [h.make_tensor_value_info("x", TP.FLOAT, [1, 4, 5, 5])],
               [h.make_tensor_value_info("y", TP.FLOAT, None)], [_w("W", (4, 3, 3, 3)), _w("B", (6,))])
    assert_converts(m, max_transposes=0)
