"""Reductions (axes as attribute or input, keepdims, noop_with_empty_axes) on the ONNX layout."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts

RNG = np.random.default_rng(17)
OPS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
       "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


def _model(op, shape, axes, keepdims, opset, dtype=TP.FLOAT, **attrs):
    as_input = opset >= 18 or (op == "ReduceSum" and opset >= 13)
    inits, ins = [], ["x"]
    if axes is not None and as_input:
        inits.append(nh.from_array(np.asarray(axes, np.int64), "axes"))
        ins.append("axes")
    elif axes is not None:
        attrs["axes"] = axes
    node = h.make_node(op, ins, ["y"], keepdims=keepdims, **attrs)
    g = h.make_graph([node], "t", [h.make_tensor_value_info("x", dtype, list(shape))],
                     [h.make_tensor_value_info("y", dtype, None)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _feeds(op, shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    if op in ("ReduceLogSum", "ReduceProd"):
        x = np.abs(x) + 0.5   # log of a positive sum; products of numbers near 1
    return {"x": x}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("axes", [None, [1], [-1], [0, 2]])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [13, 18])
def test_reduce(op, axes, keepdims, opset):
    shape = (2, 3, 4)
    assert_converts(_model(op, shape, axes, keepdims, opset), _feeds(op, shape), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
def test_noop_with_empty_axes(op):
    res = assert_converts(_model(op, (2, 3), None, 1, 18, noop_with_empty_axes=1))
    assert not {"SUM", "MEAN", "REDUCE_MAX"} & set(res.stats["op_histogram"])


@pytest.mark.parametrize("op,dtype", [("ReduceSum", TP.INT32), ("ReduceMax", TP.INT64), ("ReduceMin", TP.INT32),
                                      ("ReduceProd", TP.INT64), ("ReduceMax", TP.BOOL), ("ReduceMin", TP.BOOL)])
def test_integer_and_bool(op, dtype):
    assert_converts(_model(op, (3, 4, 2), [1], 0, 20, dtype=dtype), rtol=0, atol=0)  # bool since opset 20


def test_log_sum_exp_is_stable_for_large_values():
    x = np.array([[1000.0, 999.0, 998.0], [-1000.0, -1001.0, -999.0]], np.float32)
    res = assert_converts(_model("ReduceLogSumExp", (2, 3), [1], 0, 18), {"x": x}, rtol=1e-6, atol=1e-4)
    assert "REDUCE_MAX" in res.stats["op_histogram"]


def test_spatial_mean_after_conv_has_no_transposes():
    w = nh.from_array(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("ReduceMean", ["c"], ["y"], axes=[2, 3], keepdims=0)]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 6, 6])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], [w])
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), max_transposes=0)
