"""Slice and Pad: every argument form (attributes / inputs), negative steps, clamping, pad modes."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts

BIG = 2**63 - 1


def _model(nodes, x_shape, inits=(), opset=17, dtype=TP.FLOAT):
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", dtype, list(x_shape))],
                     [h.make_tensor_value_info("y", dtype, None)], list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _i64(name, values):
    return nh.from_array(np.asarray(values, np.int64), name)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [3], [1], None),
    ([0, 1], [-1, 1000], [0, 2], None),
    ([-3], [BIG], [-1], [1]),
    ([5], [-BIG], [1], [-1]),            # reverse the whole axis
    ([4, 0], [0, 6], [1, 2], [-2, 3]),
    ([-1], [-7], [2], [-2]),
    ([10], [1], [2], [-3]),              # start clamped to the last index
    ([0, 0, 0], [1, 6, 7], None, [1, 2, 2]),
])
@pytest.mark.parametrize("as_attr", [False, True])
def test_slice(starts, ends, axes, steps, as_attr):
    shape = [2, 6, 7]
    if as_attr:  # opset 9: attributes, no steps
        if steps is not None and any(s != 1 for s in steps):
            pytest.skip("steps need opset 10")
        if axes is not None and min(axes) < 0:
            pytest.skip("negative axes need opset 11")
        attrs = dict(starts=starts, ends=ends) | ({"axes": axes} if axes is not None else {})
        m = _model([h.make_node("Slice", ["x"], ["y"], **attrs)], shape, opset=9)
    else:
        n = len(starts)
        axes_ = axes if axes is not None else list(range(n))
        ins = ["x", "s", "e", "a"] + (["st"] if steps is not None else [])
        inits = [_i64("s", starts), _i64("e", ends), _i64("a", axes_)] + ([_i64("st", steps)] if steps else [])
        m = _model([h.make_node("Slice", ins, ["y"])], shape, inits)
    res = assert_converts(m, rtol=0, atol=0)
    codes = res.stats["op_histogram"]
    assert codes.get("SLICE", 0) + codes.get("STRIDED_SLICE", 0) == 1


def test_unit_step_slices_emit_slice_and_others_strided_slice():
    m = _model([h.make_node("Slice", ["x", "s", "e", "a"], ["y"])], [4, 5], [_i64("s", [1]), _i64("e", [3]),
                                                                         _i64("a", [1])])
    assert assert_converts(m).stats["op_histogram"] == {"SLICE": 1}
    m = _model([h.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"])], [4, 5],
               [_i64("s", [-1]), _i64("e", [-BIG]), _i64("a", [1]), _i64("st", [-1])])
    assert assert_converts(m).stats["op_histogram"] == {"STRIDED_SLICE": 1}


@pytest.mark.parametrize("dtype", [TP.INT64, TP.INT32, TP.BOOL])
def test_slice_integer_and_bool_data(dtype):
    m = _model([h.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"])], [3, 8],
               [_i64("s", [7]), _i64("e", [0]), _i64("a", [1]), _i64("st", [-2])], dtype=dtype)
    assert_converts(m)


def test_identity_slice_disappears():
    m = _model([h.make_node("Slice", ["x", "s", "e"], ["m"]), h.make_node("Relu", ["m"], ["y"])], [3, 4],
               [_i64("s", [0]), _i64("e", [BIG])])
    assert assert_converts(m).stats["op_histogram"] == {"RELU": 1}


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [
    [0, 0, 1, 2, 0, 0, 3, 1],
    [0, 1, 0, 2, 1, 0, 2, 0],
    [1, 0, 0, 0, 0, 0, 0, 1],
])
@pytest.mark.parametrize("form", ["input", "attr"])
def test_pad_modes(mode, pads, form):
    shape = [2, 3, 4, 5]
    if form == "attr":
        m = _model([h.make_node("Pad", ["x"], ["y"], mode=mode, pads=pads, value=1.5)], shape, opset=10)
    else:
        inits = [_i64("p", pads), nh.from_array(np.asarray(-2.0, np.float32), "v")]
        m = _model([h.make_node("Pad", ["x", "p", "v"], ["y"], mode=mode)], shape, inits, opset=13)
    assert_converts(m, rtol=0, atol=0)


@pytest.mark.parametrize("mode,pads", [("edge", [5, 0, 2, 7]), ("wrap", [2, 9, 0, 4]), ("wrap", [0, 0, 3, 0])])
def test_pad_edge_and_wrap_wider_than_the_axis(mode, pads):
    m = _model([h.make_node("Pad", ["x", "p"], ["y"], mode=mode)], [3, 4], [_i64("p", pads)], opset=19)
    res = assert_converts(m, rtol=0, atol=0)
    assert set(res.stats["op_histogram"]) == {"GATHER"}


@pytest.mark.parametrize("mode,pads", [("constant", [-1, 2, 1, -2]), ("constant", [0, -1, 0, -2]),
                                       ("edge", [-1, 2, 2, -1]), ("wrap", [-1, 1, 2, -2]),
                                       ("reflect", [-1, 2, 1, -3]), ("wrap", [-2, -1, 3, 1])])
def test_negative_pads_crop(mode, pads):
    m = _model([h.make_node("Pad", ["x", "p"], ["y"], mode=mode)], [4, 6], [_i64("p", pads)], opset=19)
    assert_converts(m, rtol=0, atol=0)


def test_pad_axes_input_and_value():
    inits = [_i64("p", [1, 2, 0, 3]), nh.from_array(np.asarray(7.0, np.float32), "v"), _i64("ax", [-1, 1])]
    m = _model([h.make_node("Pad", ["x", "p", "v", "ax"], ["y"])], [2, 3, 4], inits, opset=18)
    res = assert_converts(m, rtol=0, atol=0)
    assert res.stats["op_histogram"] == {"PADV2": 1}


@pytest.mark.parametrize("dtype", [TP.INT64, TP.INT32, TP.BOOL])
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect"])
def test_pad_integer_and_bool_data(dtype, mode):
    m = _model([h.make_node("Pad", ["x", "p"], ["y"], mode=mode)], [3, 4], [_i64("p", [1, 2, 2, 1])],
               opset=13, dtype=dtype)
    assert_converts(m)


def test_reflect_pad_as_wide_as_the_axis_is_refused():
    from edgepack.errors import UnsupportedOpsError
    m = _model([h.make_node("Pad", ["x", "p"], ["y"], mode="reflect")], [3, 4], [_i64("p", [0, 4, 0, 0])],
               opset=13)
    with pytest.raises(UnsupportedOpsError, match="smaller than the padded dimension"):
        from edgepack.targets.tflite import convert
        import onnx
        convert(onnx.shape_inference.infer_shapes(m))


def test_early_preflight_does_not_read_unknown_dims_as_empty():
    """Before intake completes the shapes an output may be declared with symbolic dims: no false refusal."""
    from edgepack.targets.tflite import preflight
    nodes = [h.make_node("Slice", ["x", "s", "e"], ["m"]), h.make_node("Pad", ["m", "p"], ["y"], mode="reflect")]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [2, 6, 7])],
                     [h.make_tensor_value_info("y", TP.FLOAT, ["a", "b", "c"])],
                     [_i64("s", [1]), _i64("e", [2]), _i64("p", [0, 1, 1, 0, 1, 1])])
    g.value_info.append(h.make_tensor_value_info("m", TP.FLOAT, ["a", "b", "c"]))
    preflight(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]))  # raises UnsupportedOpsError if refused
