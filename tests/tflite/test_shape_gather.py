"""Gather / GatherElements / GatherND: every axis, negative indices (constant and run-time), batch_dims."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts

RNG = np.random.default_rng(7)


def _model(node, data_shape, idx, idx_const, dtype=TP.FLOAT, opset=17):
    """``idx`` is an int array: an initializer when ``idx_const``, else a graph input fed with it."""
    inputs = [h.make_tensor_value_info("x", dtype, list(data_shape))]
    inits = []
    if idx_const:
        inits.append(nh.from_array(idx, "i"))
    else:
        inputs.append(h.make_tensor_value_info("i", nh.helper.np_dtype_to_tensor_dtype(idx.dtype), list(idx.shape)))
    g = h.make_graph([node], "t", inputs, [h.make_tensor_value_info("y", dtype, None)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _feeds(data_shape, idx, idx_const, np_dtype=np.float32):
    x = RNG.standard_normal(data_shape).astype(np_dtype) if np_dtype != np.bool_ else RNG.random(data_shape) > .5
    return {"x": x} | ({} if idx_const else {"i": idx})


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("idx", [np.array([0, -1, 2, -3]), np.array([[1, -2], [0, 0]]), np.array(-2)],
                         ids=["1d", "2d", "scalar"])
@pytest.mark.parametrize("idx_const", [True, False])
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather(axis, idx, idx_const, idx_dtype):
    shape = (3, 4, 5)
    idx = idx.astype(idx_dtype)
    m = _model(h.make_node("Gather", ["x", "i"], ["y"], axis=axis), shape, idx, idx_const)
    feeds = _feeds(shape, idx, idx_const)
    if idx.ndim == 0 and not idx_const:  # the harness cannot feed 0-D inputs: feed [1] and squeeze it
        m.graph.node.insert(0, h.make_node("Squeeze", ["i1"], ["i"]))
        m.graph.input[1].CopyFrom(h.make_tensor_value_info("i1", m.graph.input[1].type.tensor_type.elem_type, [1]))
        feeds["i1"] = feeds.pop("i").reshape(1)
    res = assert_converts(m, feeds, rtol=0, atol=0)
    assert res.stats["op_histogram"].get("FLOOR_MOD", 0) == (0 if idx_const else 1)


@pytest.mark.parametrize("dtype,np_dtype", [(TP.INT64, np.int64), (TP.INT32, np.int32), (TP.BOOL, np.bool_)])
def test_gather_non_float_data(dtype, np_dtype):
    idx = np.array([2, -1, 0], np.int64)
    m = _model(h.make_node("Gather", ["x", "i"], ["y"], axis=1), (2, 4), idx, False, dtype)
    x = RNG.integers(-9, 9, (2, 4)).astype(np_dtype)
    assert_converts(m, {"x": x, "i": idx})


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("idx_const", [True, False])
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather_elements(axis, idx_const, idx_dtype):
    shape = (3, 4, 5)
    idx_shape = list(shape)
    idx_shape[axis] = 2
    idx_shape[0] = 2  # smaller than the data on a non-axis dimension too
    dim = shape[axis]
    idx = RNG.integers(-dim, dim, idx_shape).astype(idx_dtype)
    m = _model(h.make_node("GatherElements", ["x", "i"], ["y"], axis=axis), shape, idx, idx_const)
    res = assert_converts(m, _feeds(shape, idx, idx_const), rtol=0, atol=0)
    assert res.stats["op_histogram"]["GATHER"] == 1


@pytest.mark.parametrize("data_shape,idx_shape,batch_dims", [
    ((4, 5), (3, 2), 0),
    ((4, 5, 6), (2, 3, 1), 0),
    ((2, 4, 5), (2, 3, 1), 1),
    ((2, 3, 4, 5), (2, 3, 2), 2),
    ((2, 3, 4), (2, 2), 1),
])
@pytest.mark.parametrize("idx_const", [True, False])
def test_gather_nd(data_shape, idx_shape, batch_dims, idx_const):
    m_ = idx_shape[-1]
    dims = np.asarray(data_shape[batch_dims:batch_dims + m_])
    idx = (RNG.integers(0, 1 << 20, idx_shape) % (2 * dims) - dims).astype(np.int64)  # in [-dim, dim)
    m = _model(h.make_node("GatherND", ["x", "i"], ["y"], batch_dims=batch_dims), data_shape, idx, idx_const)
    res = assert_converts(m, _feeds(data_shape, idx, idx_const), rtol=0, atol=0)
    assert res.stats["op_histogram"]["GATHER_ND"] == 1
