import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts, make, op_types

RNG = np.random.default_rng(0)


def _i64(name, values):
    return nh.from_array(np.asarray(values, np.int64), name)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [1], None),
    ([0, 1], [-1, 100], [0, 2], [1, 2]),
    ([-1], [-100], [2], [-1]),
    ([4], [0], [2], [-2]),
    ([-3], [2**62], [-1], None),
])
def test_slice(starts, ends, axes, steps):
    inits = [_i64("s", starts), _i64("e", ends), _i64("a", axes)] + ([_i64("p", steps)] if steps else [])
    m = make([h.make_node("Slice", ["x", "s", "e", "a"] + (["p"] if steps else []), ["y"])], {"x": [3, 4, 6]},
             ["y"], inits)
    assert_converts(m)


@pytest.mark.parametrize("indices,axis", [([0, 2, -1], 0), ([[1, 0], [2, 2]], 1), (1, 2), (-2, 1)])
@pytest.mark.parametrize("operand", ["init", "input"])
def test_gather(indices, axis, operand):
    idx = np.asarray(indices, np.int64)
    if operand == "init":
        m = make([h.make_node("Gather", ["x", "i"], ["y"], axis=axis)], {"x": [3, 4, 5]}, ["y"], [_i64("i", idx)])
        return assert_converts(m)
    m = make([h.make_node("Gather", ["x", "i"], ["y"], axis=axis)], {"x": [3, 4, 5], "i": (list(idx.shape), TP.INT64)},
             ["y"])
    positive = np.where(idx < 0, idx + [3, 4, 5][axis], idx)      # run-time indices: non-negative ones
    assert_converts(m, {"x": RNG.standard_normal((3, 4, 5)).astype(np.float32), "i": positive})


@pytest.mark.parametrize("mode,pads", [("constant", [0, 0, 1, 2, 0, 0, 2, 1]), ("reflect", [0, 0, 2, 1, 0, 0, 1, 2]),
                                       ("edge", [0, 0, 1, 1, 0, 0, 2, 0]), ("constant", [1, 0, 0, 0, 0, 2, 0, 0])])
def test_pad(mode, pads):
    inits = [_i64("p", pads)] + ([nh.from_array(np.array(0.5, np.float32), "v")] if mode == "constant" else [])
    m = make([h.make_node("Pad", ["x", "p"] + (["v"] if mode == "constant" else []), ["y"], mode=mode)],
             {"x": [2, 3, 4, 5]}, ["y"], inits)
    assert_converts(m, precisions=("fp32", "fp16") if mode != "constant" else ("fp32",))


@pytest.mark.parametrize("mode,ct,scales", [
    ("nearest", "asymmetric", [1, 1, 2, 2]), ("nearest", "half_pixel", [1, 1, 2, 3]),
    ("linear", "half_pixel", [1, 1, 2, 2]), ("linear", "align_corners", [1, 1, 2, 2]),
    ("linear", "asymmetric", [1, 1, 1.5, 2]), ("linear", "pytorch_half_pixel", [1, 1, 0.5, 0.5]),
])
def test_resize(mode, ct, scales):
    extra = {"nearest_mode": "floor"} if ct == "asymmetric" and mode == "nearest" else {}
    inits = [nh.from_array(np.array(scales, np.float32), "sc")]
    m = make([h.make_node("Resize", ["x", "", "sc"], ["y"], mode=mode, coordinate_transformation_mode=ct, **extra)],
             {"x": [1, 2, 4, 6]}, ["y"], inits, opset=13)
    assert_converts(m, precisions=("fp32", "fp16") if mode == "linear" and ct == "half_pixel" else ("fp32",))


def test_resize_sizes_input():
    m = make([h.make_node("Resize", ["x", "", "", "sz"], ["y"], mode="linear")], {"x": [1, 2, 4, 6]}, ["y"],
             [_i64("sz", [1, 2, 8, 12])], opset=13)
    assert_converts(m)


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("axes,keep,opset", [([1], 1, 18), ([-1, 0], 0, 18), (None, 1, 18), ([-1, 0], 0, 13)])
def test_reduce(op, axes, keep, opset):
    as_input = opset >= 18 or (op == "ReduceSum" and opset >= 13)
    attrs = {"keepdims": keep}
    inits, ins = [], ["x"]
    if axes is not None and as_input:
        inits, ins = [_i64("ax", axes)], ["x", "ax"]
    elif axes is not None:
        attrs["axes"] = axes
    m = make([h.make_node(op, ins, ["y"], **attrs)], {"x": [2, 3, 4]}, ["y"], inits, opset=opset)
    assert_converts(m, precisions=("fp32", "fp16") if opset == 18 and axes == [1] else ("fp32",))


@pytest.mark.parametrize("op,a_shape,b_shape", [("Equal", [2, 3], [3]), ("Less", [2, 3], [2, 3]),
                                                ("Greater", [2, 1], [1, 3])])
def test_compare_where_not(op, a_shape, b_shape):
    nodes = [h.make_node(op, ["a", "b"], ["c"]), h.make_node("Not", ["c"], ["n"]),
             h.make_node("Where", ["c", "a", "b"], ["y"])]
    m = make(nodes, {"a": a_shape, "b": b_shape}, ["y", "n"])
    feeds = {"a": RNG.integers(0, 3, a_shape).astype(np.float32), "b": RNG.integers(0, 3, b_shape).astype(np.float32)}
    assert_converts(m, feeds)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keep,last", [(1, 1, 0), (-1, 0, 0), (1, 1, 1), (-1, 0, 1)])
def test_argmax(op, axis, keep, last):
    m = make([h.make_node(op, ["x"], ["y"], axis=axis, keepdims=keep, select_last_index=last)], {"x": [2, 5, 4]},
             ["y"])
    ties = RNG.integers(0, 3, (2, 5, 4)).astype(np.float32)       # repeated extremes: first vs last matters
    assert_converts(m, {"x": ties})


@pytest.mark.parametrize("largest,axis", [(1, -1), (0, 1)])
def test_topk(largest, axis):
    m = make([h.make_node("TopK", ["x", "k"], ["v", "i"], largest=largest, axis=axis)], {"x": [2, 6, 7]},
             ["v", "i"], [_i64("k", [3])])
    prog = assert_converts(m)
    assert op_types(prog).get("topk") == 1
