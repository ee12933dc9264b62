"""Gemm and MatMul: FULLY_CONNECTED for constant weights, BATCH_MATMUL otherwise."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.errors import UnsupportedOpsError
from edgepack.targets.tflite import preflight

from .harness import assert_converts

RNG = np.random.default_rng(9)


def _model(node, inputs: dict, consts: dict, opset=17, dtype=TP.FLOAT):
    g = h.make_graph([node], "t", [h.make_tensor_value_info(n, dtype, list(s)) for n, s in inputs.items()],
                     [h.make_tensor_value_info("y", dtype, None)],
                     [nh.from_array(RNG.standard_normal(s).astype(np.float32), n) for n, s in consts.items()])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


M, K, N = 3, 5, 4


@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0), (1.0, 0.0)])
@pytest.mark.parametrize("c_shape", [None, (), (N,), (1, N), (M, 1), (M, N)])
@pytest.mark.parametrize("b_const", [True, False])
def test_gemm(trans_a, trans_b, alpha, beta, c_shape, b_const):
    a_shape = (K, M) if trans_a else (M, K)
    b_shape = (N, K) if trans_b else (K, N)
    ins = ["a", "b"] + (["c"] if c_shape is not None else [])
    inputs, consts = {"a": a_shape}, {"c": c_shape} if c_shape is not None else {}
    (consts if b_const else inputs)["b"] = b_shape
    node = h.make_node("Gemm", ins, ["y"], transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)
    res = assert_converts(_model(node, inputs, consts))
    ops = res.stats["op_histogram"]
    assert ("FULLY_CONNECTED" in ops) == b_const and ("BATCH_MATMUL" in ops) != b_const
    if b_const and (c_shape in (None, (), (N,), (1, N)) or beta == 0):
        assert "ADD" not in ops and "MUL" not in ops   # alpha, beta and the bias row live in the weights


def test_gemm_runtime_c():
    node = h.make_node("Gemm", ["a", "b", "c"], ["y"], beta=0.5)
    assert_converts(_model(node, {"a": (M, K), "c": (M, N)}, {"b": (K, N)}))
    assert_converts(_model(node, {"a": (M, K), "c": (N,)}, {"b": (K, N)}))


@pytest.mark.parametrize("a_shape,b_shape", [
    ((3, 5), (5, 4)), ((2, 3, 5), (5, 4)), ((2, 6, 3, 5), (5, 4)),          # FULLY_CONNECTED when B is constant
    ((2, 3, 5), (2, 5, 4)), ((2, 1, 3, 5), (4, 5, 6)), ((3, 5), (2, 5, 4)),   # batched, broadcasting
    ((5,), (5, 4)), ((2, 3, 5), (5,)), ((5,), (2, 5, 4)), ((5,), (5,)),      # 1-D operands (numpy rules)
])
@pytest.mark.parametrize("b_const", [True, False])
def test_matmul(a_shape, b_shape, b_const):
    inputs, consts = {"a": a_shape}, {}
    (consts if b_const else inputs)["b"] = b_shape
    res = assert_converts(_model(h.make_node("MatMul", ["a", "b"], ["y"]), inputs, consts))
    fc = "FULLY_CONNECTED" in res.stats["op_histogram"]
    assert fc == (b_const and len(b_shape) == 2 and len(a_shape) >= 2)


def test_matmul_of_conv_features_keeps_layout_breaking_semantics():
    """A MatMul over the last axis of an NCHW conv output must see NCHW data, whatever layout.py does."""
    w = nh.from_array(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "W")
    b = nh.from_array(RNG.standard_normal((6, 7)).astype(np.float32), "B")
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]), h.make_node("MatMul", ["c", "B"], ["y"])]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 5, 6])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], [w, b])
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))


def test_integer_matmul_is_refused():
    node = h.make_node("MatMul", ["a", "b"], ["y"])
    m = _model(node, {"a": (2, 3), "b": (3, 2)}, {}, dtype=TP.INT32)
    with pytest.raises(UnsupportedOpsError, match="float32 only"):
        preflight(m)
