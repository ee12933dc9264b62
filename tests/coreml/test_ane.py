"""The Neural Engine report: each rule of the table fires on a model made to trip it, and not on a clean one."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.targets.coreml import ane
from edgepack.targets.coreml.target import TARGET

from .harness import make, weight
from .kit import job


def _i64(name, values):
    return nh.from_array(np.asarray(values, np.int64), name)


def _report(model, precision="fp16", samples=None):
    return TARGET.convert(model, job(model, precision, samples=samples)).extra["ane"]


def _rules(report):
    return {f["rule"]: f for f in report["findings"]}


def test_clean_cnn_is_likely_on_the_ane():
    m = make([h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c"], ["y"])],
             {"x": [1, 3, 8, 8]}, ["y"], [weight("w", (4, 3, 3, 3))])
    r = _report(m)
    assert r["verdict"] == "ane-likely" and r["findings"] == [], r
    assert r["rules"] == [rule.id for rule in ane.RULES]
    assert r["statistics"]["samples"] == 3 and r["statistics"]["tensors"] == 2
    assert r["statistics"]["fp16_headroom"] > 1000


def test_fp32_compute_is_off_the_ane():
    m = make([h.make_node("Relu", ["x"], ["y"])], {"x": [1, 4]}, ["y"])
    r = _report(m, "fp32")
    assert r["verdict"] == "off-ane" and "fp32-compute" in _rules(r)


def test_fallback_ops_and_integer_tensors():
    nodes = [h.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1), h.make_node("Cast", ["i"], ["i32"], to=TP.INT32),
             h.make_node("Add", ["i32", "i32"], ["y"])]
    m = make(nodes, {"x": [2, 9]}, ["v", "y"], [_i64("k", [3])])
    r = _report(m)
    found = _rules(r)
    assert r["verdict"] == "partial"
    assert found["fallback-op"]["count"] == 1 and "topk: sorting" in found["fallback-op"]["where"][0]
    assert "integer-tensors" in found and any("add" in w for w in found["integer-tensors"]["where"])


def test_long_axes():
    nodes = [h.make_node("Reshape", ["x", "s"], ["r"]), h.make_node("Sigmoid", ["r"], ["y"])]
    m = make(nodes, {"x": [64, 512]}, ["y"], [_i64("s", [1, 32768])])
    found = _rules(_report(m))
    assert found["large-axis"]["where"] == ["r", "y"], found


def test_rank_above_five_is_refused_by_preflight_and_flagged_in_programs():
    from edgepack.errors import UnsupportedOpsError
    m = make([h.make_node("Reshape", ["x", "s"], ["y"], name="deep")], {"x": [64, 32]}, ["y"],
             [_i64("s", [2, 2, 2, 2, 2, 64])])
    with pytest.raises(UnsupportedOpsError, match="rank 6 tensor 'y'"):
        TARGET.preflight(m)
    r = ane.report(_program((2, 2, 2, 2, 2, 4), lambda mb, x: mb.relu(x=x, name="y")), "fp16", {})
    assert _rules(r)["rank>5"]["where"] == ["y"]


def _program(shape, body):
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program

    with Function({"x": mb.placeholder(shape=shape)}) as fn:
        fn.set_outputs([body(mb, fn.inputs["x"])])
    program = Program()
    program.add_function("main", fn)
    return program


@pytest.mark.parametrize("scale,rule", [(1e5, "fp16-overflow"), (1e-6, "fp16-underflow")])
def test_fp16_range_from_calibration_statistics(scale, rule):
    nodes = [h.make_node("Mul", ["x", "s"], ["big"]), h.make_node("Tanh", ["big"], ["y"])]
    m = make(nodes, {"x": [1, 64]}, ["y"], [nh.from_array(np.array(scale, np.float32), "s")])
    r = _report(m)
    found = _rules(r)
    assert r["verdict"] == "ane-risk" and set(found) == {rule}, r
    assert any(w.startswith("big ") for w in found[rule]["where"])


def test_tiny_values_next_to_large_ones_are_not_signal():
    """Softmax tails below fp16 normals, far under the tensor's own max, are rounding noise in fp16 anyway."""
    m = make([h.make_node("Mul", ["x", "s"], ["z"]), h.make_node("Softmax", ["z"], ["y"], axis=-1)], {"x": [1, 100]},
             ["y"], [nh.from_array(np.array(30.0, np.float32), "s")])
    assert "fp16-underflow" not in _rules(_report(m))


def test_dynamic_input_shapes():
    from coremltools.converters.mil.mil import get_new_symbol
    program = _program((get_new_symbol(), 3), lambda mb, x: mb.relu(x=x, name="y"))
    r = ane.report(program, "fp16", {})
    assert r["verdict"] == "off-ane" and _rules(r)["dynamic-shape"]["where"] == ["x"]
    assert ane.report(program, "fp16", {}, flexible=("x",))["findings"][0]["count"] == 1
