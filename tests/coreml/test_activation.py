import numpy as np
import pytest
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import as_input_or_init, assert_converts, make

RNG = np.random.default_rng(0)
SHAPES = [[2, 16], [1, 3, 5, 6]]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op,attrs", [
    ("Relu", {}), ("LeakyRelu", {"alpha": 0.2}), ("Sigmoid", {}), ("Tanh", {}),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}),
])
def test_activation(op, attrs, shape):
    m = make([h.make_node(op, ["x"], ["y"], **attrs)], {"x": shape}, ["y"])
    assert_converts(m, precisions=("fp32", "fp16") if len(shape) == 4 else ("fp32",))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    m = make([h.make_node("Gelu", ["x"], ["y"], approximate=approximate)], {"x": [2, 3, 8]}, ["y"], opset=20)
    assert_converts(m, precisions=("fp32", "fp16"))


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (5, 6)])
@pytest.mark.parametrize("operand", ["init", "input"])
def test_prelu(slope_shape, operand):
    slope = RNG.uniform(0.05, 0.5, slope_shape).astype(np.float32)
    inputs, inits = as_input_or_init(operand, "s", slope)
    m = make([h.make_node("PRelu", ["x", "s"], ["y"])], {"x": [1, 3, 5, 6], **inputs}, ["y"], inits)
    feeds = {"x": RNG.standard_normal((1, 3, 5, 6)).astype(np.float32), **({"s": slope} if inputs else {})}
    assert_converts(m, feeds)


@pytest.mark.parametrize("lo,hi", [(0.0, 6.0), (-1.0, 1.0), (-0.5, None), (None, 0.5), (None, None)])
def test_clip(lo, hi):
    inits = [nh.from_array(np.array(v, np.float32), n) for n, v in (("lo", lo), ("hi", hi)) if v is not None]
    ins = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
    m = make([h.make_node("Clip", ins, ["y"])], {"x": [2, 3, 4]}, ["y"], inits)
    assert_converts(m)


def test_clip_bounds_computed_at_run_time():
    m = make([h.make_node("Clip", ["x", "lo", "hi"], ["y"])], {"x": [2, 6], "lo": [], "hi": []}, ["y"])
    feeds = {"x": RNG.standard_normal((2, 6)).astype(np.float32), "lo": np.array(-0.4, np.float32),
             "hi": np.array(0.3, np.float32)}
    assert_converts(m, feeds)


def test_clip_opset6_attributes():
    m = make([h.make_node("Clip", ["x"], ["y"], min=-0.3, max=0.7)], {"x": [2, 5]}, ["y"], opset=6)
    assert_converts(m)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis,opset", [(-1, 13), (1, 13), (1, 11), (2, 11), (-1, 11)])
def test_softmax(op, axis, opset):
    m = make([h.make_node(op, ["x"], ["y"], axis=axis)], {"x": [2, 3, 4, 5]}, ["y"], opset=opset)
    assert_converts(m, precisions=("fp32", "fp16") if opset == 13 else ("fp32",))
