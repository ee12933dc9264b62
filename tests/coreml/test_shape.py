import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts, make, op_types

RNG = np.random.default_rng(0)


def _i64(name, values):
    return nh.from_array(np.asarray(values, np.int64), name)


@pytest.mark.parametrize("op,attrs,extra", [
    ("Reshape", {}, [_i64("s", [2, -1, 4])]),
    ("Reshape", {}, [_i64("s", [0, 0, 2, 2])]),
    ("Flatten", {"axis": 2}, []),
    ("Flatten", {"axis": 0}, []),
    ("Squeeze", {}, [_i64("s", [2])]),
    ("Unsqueeze", {}, [_i64("s", [0, -1])]),
])
def test_reshape_family(op, attrs, extra):
    shape = [2, 3, 1, 4] if op == "Squeeze" else [2, 3, 4]
    ins = ["x"] + [t.name for t in extra]
    m = make([h.make_node(op, ins, ["y"], **attrs)], {"x": shape}, ["y"], extra)
    assert op_types(assert_converts(m)).get("reshape") == 1


@pytest.mark.parametrize("perm", [[0, 2, 3, 1], [3, 1, 0, 2], None])
def test_transpose(perm):
    attrs = {"perm": perm} if perm else {}
    m = make([h.make_node("Transpose", ["x"], ["y"], **attrs)], {"x": [2, 3, 4, 5]}, ["y"])
    assert_converts(m, precisions=("fp32", "fp16") if perm is None else ("fp32",))


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("operand", ["init", "input"])
def test_concat(axis, operand):
    inits, inputs = [], {"a": [2, 3, 4]}
    if operand == "init":
        inits = [nh.from_array(RNG.standard_normal((2, 3, 4)).astype(np.float32), "b")]
    else:
        inputs["b"] = [2, 3, 4]
    m = make([h.make_node("Concat", ["a", "b", "a"], ["y"], axis=axis)], inputs, ["y"], inits)
    assert_converts(m)


@pytest.mark.parametrize("split,axis", [(None, 1), ([1, 3, 2], 1), ([2, 2], -1)])
def test_split(split, axis):
    inits = [_i64("sp", split)] if split else []
    n = len(split) if split else 3
    outs = [f"y{i}" for i in range(n)]
    m = make([h.make_node("Split", ["x"] + (["sp"] if split else []), outs, axis=axis)], {"x": [2, 6, 4]}, outs,
             inits, opset=13)
    assert_converts(m)


def test_split_opset11_attribute():
    m = make([h.make_node("Split", ["x"], ["a", "b"], axis=0, split=[1, 3])], {"x": [4, 5]}, ["a", "b"], opset=11)
    assert_converts(m)


@pytest.mark.parametrize("in_shape,out_shape", [([3, 1], [2, 3, 4]), ([1, 4], [3, 4]), ([3, 4], [3, 4])])
def test_expand(in_shape, out_shape):
    m = make([h.make_node("Expand", ["x", "s"], ["y"])], {"x": in_shape}, ["y"], [_i64("s", out_shape)])
    assert_converts(m)


def test_tile():
    m = make([h.make_node("Tile", ["x", "r"], ["y"])], {"x": [2, 3]}, ["y"], [_i64("r", [2, 3])])
    assert_converts(m, precisions=("fp32", "fp16"))


@pytest.mark.parametrize("src,dst", [(TP.FLOAT, TP.INT32), (TP.INT64, TP.FLOAT), (TP.FLOAT, TP.BOOL),
                                     (TP.FLOAT, TP.FLOAT)])
def test_cast(src, dst):
    m = make([h.make_node("Cast", ["x"], ["y"], to=dst)], {"x": ([2, 5], src)}, ["y"])
    feeds = None if src != TP.FLOAT else {"x": (RNG.standard_normal((2, 5)) * 4).astype(np.float32)}
    assert_converts(m, feeds)
