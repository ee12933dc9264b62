"""Pooling: native 2-D pools where TFLite matches, sliced taps for dilated and 3-D windows."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.errors import UnsupportedOpsError
from edgepack.targets.tflite import preflight

from .harness import assert_converts

RNG = np.random.default_rng(11)


def _model(nodes, x_shape, inits=(), opset=19, dtype=TP.FLOAT):
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", dtype, list(x_shape))],
                     [h.make_tensor_value_info("y", dtype, None)], list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _pool(op, x_shape, **attrs):
    return _model([h.make_node(op, ["x"], ["y"], **attrs)], x_shape)


def _ops(res):
    return res.stats["op_histogram"]


WINDOWS = [
    dict(kernel_shape=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2]),
    dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 2], pads=[0, 1, 2, 0], strides=[2, 1]),        # asymmetric
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[3, 3], pads=[1, 1, 1, 1], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[2, 4], strides=[2, 3], auto_pad="SAME_LOWER"),
    dict(kernel_shape=[3, 3], auto_pad="VALID"),
]


@pytest.mark.parametrize("attrs", WINDOWS)
def test_max_pool(attrs):
    res = assert_converts(_pool("MaxPool", (1, 3, 9, 10), **attrs), max_transposes=0)
    assert "MAX_POOL_2D" in _ops(res)


@pytest.mark.parametrize("attrs", WINDOWS)
@pytest.mark.parametrize("include_pad", [0, 1])
def test_average_pool(attrs, include_pad):
    res = assert_converts(_pool("AveragePool", (1, 3, 9, 10), count_include_pad=include_pad, **attrs),
                          max_transposes=0)
    assert "AVERAGE_POOL_2D" in _ops(res)


def test_tflite_same_padding_is_used_when_it_excludes_the_padding():
    res = assert_converts(_pool("AveragePool", (1, 3, 9, 10), kernel_shape=[3, 3], strides=[2, 2],
                                auto_pad="SAME_UPPER"))
    assert "PAD" not in _ops(res) and "MUL" not in _ops(res)
    res = assert_converts(_pool("AveragePool", (1, 3, 9, 10), kernel_shape=[3, 3], strides=[2, 2],
                                auto_pad="SAME_UPPER", count_include_pad=1))
    assert "PAD" in _ops(res) and "MUL" not in _ops(res)   # every window divides by the whole kernel
    res = assert_converts(_pool("AveragePool", (1, 3, 10, 10), kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1,
                                count_include_pad=1))
    assert "MUL" in _ops(res)   # the ceil_mode overhang of the last windows is not counted


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
def test_1d(op):
    assert_converts(_pool(op, (2, 3, 11), kernel_shape=[3], strides=[2], pads=[1, 2]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op,extra", [("MaxPool", {}), ("AveragePool", dict(count_include_pad=0)),
                                      ("AveragePool", dict(count_include_pad=1))])
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[3, 3], dilations=[2, 2]),
    dict(kernel_shape=[2, 3], dilations=[2, 1], strides=[2, 2], pads=[1, 0, 1, 2]),
    dict(kernel_shape=[3, 3], dilations=[2, 2], strides=[3, 3], ceil_mode=1),
])
def test_dilated(op, extra, attrs):
    res = assert_converts(_pool(op, (1, 2, 11, 12), **attrs, **extra), max_transposes=0)
    assert "STRIDED_SLICE" in _ops(res) and "MAX_POOL_2D" not in _ops(res)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[2, 2, 2]),
    dict(kernel_shape=[3, 3, 2], strides=[2, 2, 1], pads=[1, 1, 0, 1, 0, 1]),
    dict(kernel_shape=[2, 3, 3], dilations=[1, 2, 2], ceil_mode=1, strides=[2, 2, 2]),
])
def test_3d(op, attrs):
    assert_converts(_pool(op, (1, 2, 6, 7, 8), **attrs), rtol=1e-4, atol=1e-4)


def test_3d_average_counts_padding_as_asked():
    for include_pad in (0, 1):
        assert_converts(_pool("AveragePool", (1, 2, 5, 5, 5), kernel_shape=[3, 3, 3], pads=[1] * 6,
                              count_include_pad=include_pad))


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(p):
    assert_converts(_pool("LpPool", (1, 3, 9, 10), kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], p=p),
                    rtol=1e-4, atol=1e-4)


def test_max_pool_int8_padding_is_the_lowest_value():
    x = RNG.integers(-128, -100, (1, 2, 5, 5)).astype(np.int8)   # all negative: zero padding would win
    m = _model([h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], (1, 2, 5, 5),
               dtype=TP.INT8)
    assert_converts(m, {"x": x}, rtol=0, atol=0)
    m3 = _model([h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2, 2], pads=[1] * 6)], (1, 2, 3, 3, 3),
                dtype=TP.INT8)
    assert_converts(m3, {"x": RNG.integers(-128, -100, (1, 2, 3, 3, 3)).astype(np.int8)}, rtol=0, atol=0)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 4, 5, 6), (1, 2, 3, 4, 5)])
def test_global(op, shape):
    assert_converts(_pool(op, shape), rtol=1e-4, atol=1e-4)


def test_classifier_head_has_no_transposes():
    w = nh.from_array(RNG.standard_normal((8, 3, 3, 3)).astype(np.float32), "W")
    fc = nh.from_array(RNG.standard_normal((5, 8)).astype(np.float32), "F")
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             h.make_node("GlobalAveragePool", ["p"], ["g"]), h.make_node("Flatten", ["g"], ["f"]),
             h.make_node("Gemm", ["f", "F"], ["y"], transB=1)]
    res = assert_converts(_model(nodes, (1, 3, 8, 8), [w, fc]), max_transposes=0)
    assert res.stats["op_histogram"]["MEAN"] == 1


def test_max_pool_indices_are_refused():
    m = h.make_model(h.make_graph([h.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])], "t",
                                  [h.make_tensor_value_info("x", TP.FLOAT, [1, 1, 4, 4])],
                                  [h.make_tensor_value_info("y", TP.FLOAT, [1, 1, 3, 3]),
                                   h.make_tensor_value_info("i", TP.INT64, [1, 1, 3, 3])]),
                     opset_imports=[h.make_opsetid("", 12)])
    with pytest.raises(UnsupportedOpsError, match="Indices output"):
        preflight(m)
