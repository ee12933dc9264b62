import numpy as np
import pytest
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import as_input_or_init, assert_converts, make, op_types, weight

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("a,b", [([3, 4], [4, 5]), ([2, 3, 4], [4, 5]), ([2, 3, 4], [2, 4, 5]),
                                 ([2, 1, 3, 4], [1, 5, 4, 2]), ([4], [4, 3]), ([3, 4], [4]), ([4], [2, 4, 3])])
@pytest.mark.parametrize("operand", ["init", "input"])
def test_matmul(a, b, operand):
    inputs, inits = as_input_or_init(operand, "b", RNG.standard_normal(b).astype(np.float32))
    m = make([h.make_node("MatMul", ["a", "b"], ["y"])], {"a": a, **inputs}, ["y"], inits)
    assert_converts(m, precisions=("fp32", "fp16") if len(a) == 3 and operand == "init" else ("fp32",))


@pytest.mark.parametrize("attrs,c_shape", [
    ({}, (5,)), ({"transB": 1}, (5,)), ({"transA": 1}, (1, 5)), ({"alpha": 0.5, "beta": 2.0}, (3, 5)),
    ({"transB": 1, "alpha": 2.0}, None), ({"beta": 0.5}, ()),
])
@pytest.mark.parametrize("operand", ["init", "input"])
def test_gemm(attrs, c_shape, operand):
    a_shape = [4, 3] if attrs.get("transA") else [3, 4]
    b = RNG.standard_normal((5, 4) if attrs.get("transB") else (4, 5)).astype(np.float32)
    inputs, inits = as_input_or_init(operand, "b", b)
    ins = ["a", "b"]
    if c_shape is not None:
        inits.append(nh.from_array(np.asarray(RNG.standard_normal(c_shape), np.float32), "c"))
        ins.append("c")
    m = make([h.make_node("Gemm", ins, ["y"], **attrs)], {"a": a_shape, **inputs}, ["y"], inits)
    prog = assert_converts(m)
    if operand == "init" and not attrs.get("transA") and c_shape in ((5,), ()):
        assert "linear" in op_types(prog)


@pytest.mark.parametrize("shape", [[2, 3, 5, 6], [2, 3], [2, 3, 7]])
def test_batch_norm(shape):
    c = shape[1]
    inits = [nh.from_array(RNG.uniform(0.5, 1.5, c).astype(np.float32), "s"), weight("b", (c,), 1),
             weight("mean", (c,), 2), nh.from_array(RNG.uniform(0.5, 2.0, c).astype(np.float32), "var")]
    m = make([h.make_node("BatchNormalization", ["x", "s", "b", "mean", "var"], ["y"], epsilon=1e-3)],
             {"x": shape}, ["y"], inits)
    assert_converts(m, precisions=("fp32", "fp16"))


@pytest.mark.parametrize("shape", [[2, 3, 5, 6], [1, 4, 9]])
def test_instance_norm(shape):
    c = shape[1]
    m = make([h.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-5)], {"x": shape}, ["y"],
             [weight("s", (c,)), weight("b", (c,), 1)])
    assert_converts(m, precisions=("fp32", "fp16"))


@pytest.mark.parametrize("axis,bias", [(-1, True), (-2, True), (-1, False)])
@pytest.mark.parametrize("operand", ["init", "input"])
def test_layer_norm(axis, bias, operand):
    norm = (6, 8) if axis == -2 else (8,)
    inputs, inits = as_input_or_init(operand, "s", RNG.standard_normal(norm).astype(np.float32))
    ins = ["x", "s"]
    if bias:
        inits.append(weight("b", norm, 1))
        ins.append("b")
    m = make([h.make_node("LayerNormalization", ins, ["y"], axis=axis, epsilon=1e-5)], {"x": [2, 6, 8], **inputs},
             ["y"], inits)
    assert_converts(m, precisions=("fp32", "fp16") if operand == "init" else ("fp32",))


@pytest.mark.parametrize("axis", [-1, 1])
def test_layer_norm_mean_and_inv_std_dev_outputs(axis):
    m = make([h.make_node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "isd"], axis=axis, epsilon=1e-3)],
             {"x": [2, 3, 5]}, ["y", "mean", "isd"], [weight("s", (3, 5) if axis == 1 else (5,)),
                                                       weight("b", (3, 5) if axis == 1 else (5,), 1)])
    assert_converts(m, precisions=("fp32", "fp16"))


@pytest.mark.parametrize("size", [3, 5])
def test_lrn(size):
    m = make([h.make_node("LRN", ["x"], ["y"], size=size, alpha=1e-3, beta=0.75, bias=1.5)], {"x": [1, 8, 5, 5]},
             ["y"])
    assert_converts(m, precisions=("fp32", "fp16"))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[2, 2], strides=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 2], strides=[1, 2], pads=[0, 1, 2, 0]),
    dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
])
def test_pool2d(op, attrs):
    attrs = {k: v for k, v in attrs.items() if op == "AveragePool" or k != "count_include_pad"}
    m = make([h.make_node(op, ["x"], ["y"], **attrs)], {"x": [1, 3, 10, 11]}, ["y"])
    assert_converts(m, precisions=("fp32", "fp16") if "pads" not in attrs else ("fp32",))


def test_max_pool_ceil_drops_a_window_starting_in_the_padding():
    m = make([h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1)],
             {"x": [1, 1, 2, 2]}, ["y"], opset=19)
    assert_converts(m)


def test_pool1d():
    m = make([h.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3], strides=[2])], {"x": [2, 3, 11]}, ["y"])
    assert_converts(m)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [[1, 3, 7, 8], [2, 4, 9]])
def test_global_pool(op, shape):
    m = make([h.make_node(op, ["x"], ["y"])], {"x": shape}, ["y"])
    assert_converts(m, precisions=("fp32", "fp16"))
