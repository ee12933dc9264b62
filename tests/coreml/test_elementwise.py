import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

from .harness import as_input_or_init, assert_converts, make

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
@pytest.mark.parametrize("shape_b,operand", [((2, 3, 4, 5), "input"), ((1, 3, 1, 1), "init"), ((5,), "input"),
                                             ((), "init"), ((), "input")])
def test_binary(op, shape_b, operand):
    b = np.asarray(RNG.standard_normal(shape_b) + (3.0 if op == "Div" else 0.0), np.float32)
    inputs, inits = as_input_or_init(operand, "b", b)
    m = make([h.make_node(op, ["a", "b"], ["y"])], {"a": [2, 3, 4, 5], **inputs}, ["y"], inits)
    feeds = None
    if operand == "input" and op == "Div":
        feeds = {"a": RNG.standard_normal((2, 3, 4, 5)).astype(np.float32), "b": b}
    assert_converts(m, feeds, precisions=("fp32", "fp16") if shape_b == (1, 3, 1, 1) else ("fp32",))


@pytest.mark.parametrize("exponent", [2.0, 0.5, 3.0])
def test_pow(exponent):
    from onnx import numpy_helper as nh
    m = make([h.make_node("Abs", ["x"], ["a"]), h.make_node("Pow", ["a", "e"], ["y"])], {"x": [2, 8]}, ["y"],
             [nh.from_array(np.array(exponent, np.float32), "e")])
    prog = assert_converts(m)
    from .harness import op_types
    assert "pow" in op_types(prog) if exponent == 3.0 else "pow" not in op_types(prog)


@pytest.mark.parametrize("op,positive", [("Sqrt", True), ("Exp", False), ("Log", True), ("Abs", False),
                                         ("Neg", False), ("Reciprocal", True), ("Erf", False), ("Floor", False)])
def test_unary(op, positive):
    x = RNG.standard_normal((2, 3, 7)).astype(np.float32)
    if positive:
        x = np.abs(x) + 0.1
    m = make([h.make_node(op, ["x"], ["y"])], {"x": [2, 3, 7]}, ["y"])
    assert_converts(m, {"x": x}, precisions=("fp32", "fp16"))


@pytest.mark.parametrize("op,mil", [("Sum", "add"), ("Max", "maximum"), ("Min", "minimum")])
def test_variadic(op, mil):
    m = make([h.make_node(op, ["a", "b", "c"], ["y"])], {"a": [2, 4], "b": [1, 4], "c": [4]}, ["y"])
    from .harness import op_types
    assert op_types(assert_converts(m)).get(mil) == 2


def test_integer_arithmetic():
    m = make([h.make_node("Add", ["a", "b"], ["s"]), h.make_node("Mul", ["s", "b"], ["y"])],
             {"a": ([2, 5], TP.INT32), "b": ([2, 5], TP.INT32)}, ["y"])
    assert_converts(m)


def test_integer_division_truncates_toward_zero():
    m = make([h.make_node("Div", ["a", "b"], ["y"])], {"a": ([2, 4], TP.INT32), "b": ([2, 4], TP.INT32)}, ["y"])
    a = np.array([[7, -7, 7, -7], [0, 5, -1, 9]], np.int32)
    b = np.array([[2, 2, -2, -2], [3, -5, 2, -4]], np.int32)
    assert_converts(m, {"a": a, "b": b})


@pytest.mark.parametrize("operand", ["init", "input"])
def test_pow_with_integer_exponent(operand):
    inputs, inits = as_input_or_init(operand, "e", np.array([2, 3, 1], np.int64))
    m = make([h.make_node("Pow", ["x", "e"], ["y"])], {"x": [2, 3], **inputs}, ["y"], inits, opset=15)
    feeds = {"x": RNG.uniform(0.5, 2, (2, 3)).astype(np.float32)}
    if inputs:
        feeds["e"] = np.array([2, 3, 1], np.int64)
    assert_converts(m, feeds)
