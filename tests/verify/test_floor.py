"""The reference's floor: inputs moved by less than half an int8 step, and the fp32 model run on them."""
from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from edgepack.model.ort import reference_outputs
from edgepack.verify.floor import STEPS, dithered, input_floor


def _samples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.uniform(-2, 3, (1, 4, 5)).astype(np.float32), "ids": rng.integers(0, 99, (1, 7))}
            for _ in range(n)]


def test_float_inputs_move_within_half_a_step_of_their_range_and_integer_inputs_do_not():
    samples = _samples()
    moved, steps = dithered(samples, samples, seed=3)
    lo = min(float(s["x"].min()) for s in samples)
    hi = max(float(s["x"].max()) for s in samples)
    assert set(steps) == {"x"} and steps["x"] == (hi - lo) / STEPS
    for a, b in zip(samples, moved):
        d = np.abs(b["x"].astype(np.float64) - a["x"])
        assert d.max() <= steps["x"] / 2 + 1e-6 and d.mean() > steps["x"] / 10     # moved, but within the bound
        assert b["x"].dtype == np.float32 and b["x"].shape == a["x"].shape
        assert b["ids"] is a["ids"]
    again, _ = dithered(samples, samples, seed=3)
    assert all(np.array_equal(a["x"], b["x"]) for a, b in zip(moved, again))       # deterministic in the seed
    other, _ = dithered(samples, samples, seed=4)
    assert not np.array_equal(other[0]["x"], moved[0]["x"])


@settings(max_examples=40)
@given(st.floats(-1e3, 1e3), st.floats(1e-3, 1e3), st.integers(0, 2 ** 16))
def test_the_bound_holds_for_any_range(lo, width, seed):
    rng = np.random.default_rng(seed)
    samples = [{"x": (lo + width * rng.random((3, 3))).astype(np.float32)} for _ in range(3)]
    moved, steps = dithered(samples, samples, seed=seed)
    for a, b in zip(samples, moved):
        assert np.abs(b["x"].astype(np.float64) - a["x"]).max() <= steps["x"] / 2 + 4 * np.spacing(np.float32(abs(lo) + width))


def _steep(slope: float) -> onnx.ModelProto:
    """y = sigmoid(slope * sum(x)): a steep slope makes a model whose output flips on a tiny input change."""
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1),
             helper.make_node("Mul", ["s", "k"], ["z"]), helper.make_node("Sigmoid", ["z"], ["y"])]
    g = helper.make_graph(nodes, "steep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
                          [helper.make_tensor("k", TensorProto.FLOAT, [], [slope])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_the_floor_of_a_steep_model_is_far_from_its_reference_and_a_gentle_ones_is_not():
    rng = np.random.default_rng(0)
    base = np.array([1, -1, 0.5, -0.5, 0.25, -0.25, 0.75, -0.75], np.float32)
    samples = [{"x": rng.permutation(base)[None]} for _ in range(16)]        # each sums to 0: logit 0
    for slope, far in ((1e4, True), (0.1, False)):
        model = _steep(slope)
        ref = reference_outputs(model, samples)
        got, steps = input_floor(model, samples, samples, seed=0)
        err = max(float(np.abs(g["y"] - r["y"]).max()) for g, r in zip(got, ref))
        assert steps["x"] > 0
        assert (err > 0.3) if far else (err < 1e-3), (slope, err)


def test_a_model_with_only_integer_inputs_has_no_floor():
    g = helper.make_graph([helper.make_node("Cast", ["ids"], ["y"], to=TensorProto.FLOAT)], "ints",
                          [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    samples = [{"ids": np.array([[1, 2, 3]], np.int64)}]
    assert input_floor(model, samples, samples) is None
    assert input_floor(_steep(1.0), [], samples) is None           # no held-out samples: no floor, no error


def test_a_zero_one_float_input_is_a_mask_and_is_not_moved():
    rng = np.random.default_rng(2)
    samples = [{"x": rng.uniform(-1, 1, (1, 8)).astype(np.float32),
                "mask": (rng.random((1, 8)) > 0.3).astype(np.float32)} for _ in range(5)]
    moved, steps = dithered(samples, samples, seed=1)
    assert set(steps) == {"x"}
    assert all(b["mask"] is a["mask"] and not np.array_equal(b["x"], a["x"]) for a, b in zip(samples, moved))
    # one value off {0, 1} in any sample makes it an input like any other
    samples[-1]["mask"] = samples[-1]["mask"] * np.float32(0.5)
    assert set(dithered(samples, samples, seed=1)[1]) == {"x", "mask"}


def test_an_additive_masks_floor_is_the_models_not_the_masks():
    """y = x + (1 - mask) * finfo.min: moving the mask by any amount moves y by 1e36; the floor leaves it."""
    nodes = [helper.make_node("Sub", ["one", "mask"], ["inv"]), helper.make_node("Mul", ["inv", "low"], ["b"]),
             helper.make_node("Add", ["x", "b"], ["z"]), helper.make_node("Softmax", ["z"], ["y"], axis=-1)]
    g = helper.make_graph(nodes, "masked", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 8])
                                            for n in ("x", "mask")],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
                           helper.make_tensor("low", TensorProto.FLOAT, [], [float(np.finfo(np.float32).min)])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    rng = np.random.default_rng(0)
    samples = [{"x": rng.uniform(-1, 1, (1, 8)).astype(np.float32),
                "mask": np.array([[1] * (8 - k) + [0] * k], np.float32)} for k in range(4)]
    got, steps = input_floor(model, samples, samples, seed=0)
    ref = reference_outputs(model, samples)
    assert set(steps) == {"x"}
    for g_, r in zip(got, ref):
        assert np.abs(g_["y"] - r["y"]).max() < 0.01          # moved by a dither of x only
