"""Softmax, LogSoftmax and Hardmax over any axis, with the opset < 13 2-D coercion."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts

RNG = np.random.default_rng(13)


def _model(op, shape, opset, **attrs):
    g = h.make_graph([h.make_node(op, ["x"], ["y"], **attrs)], "t", [h.make_tensor_value_info("x", TP.FLOAT, shape)],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


CASES = [((6,), 0), ((3, 5), 0), ((3, 5), 1), ((2, 3, 4), 1), ((2, 3, 4), -1), ((2, 3, 4, 5), 0), ((2, 3, 4, 5), 2),
         ((2, 3, 4, 5), -3)]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", CASES)
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax(op, shape, axis, opset):
    """Opset 11 normalizes over all dims from ``axis`` on; opset 13 over ``axis`` alone."""
    x = (RNG.standard_normal(shape) * 4).astype(np.float32)
    assert_converts(_model(op, list(shape), opset, axis=axis), {"x": x}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,axis", CASES)
@pytest.mark.parametrize("opset", [11, 13])
def test_hardmax(shape, axis, opset):
    x = RNG.integers(0, 3, shape).astype(np.float32)   # many ties: the first maximum must win
    res = assert_converts(_model("Hardmax", list(shape), opset, axis=axis), {"x": x}, rtol=0, atol=0)
    assert "ONE_HOT" in res.stats["op_histogram"]


def test_large_logits_do_not_overflow():
    x = np.array([[1000.0, 999.0, -1000.0], [88.0, 89.0, 90.0]], np.float32)
    for op in ("Softmax", "LogSoftmax"):
        assert_converts(_model(op, [2, 3], 13), {"x": x}, rtol=1e-5, atol=1e-5)


def test_channel_softmax_after_conv_has_no_transposes():
    w = nh.from_array(RNG.standard_normal((5, 3, 3, 3)).astype(np.float32), "W")
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Softmax", ["c"], ["y"], axis=1)]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 6, 6])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], [w])
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), rtol=1e-5, atol=1e-6,
                    max_transposes=0)
