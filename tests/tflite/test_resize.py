"""Resize / Upsample: native TFLite resize ops only where they match ONNX exactly, GATHER taps otherwise."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx.reference import ReferenceEvaluator

from edgepack.errors import UnsupportedOpsError
from edgepack.targets.tflite import convert, preflight
from edgepack.targets.tflite.ops.resize import onnx_taps, tflite_taps

from .harness import assert_converts, random_feeds, run_tflite

RNG = np.random.default_rng(7)


def _resize(x_shape, *, scales=None, sizes=None, roi=None, opset=19, dtype=TP.FLOAT, extra_nodes=(), **attrs):
    inits, ins = [], ["x", "", "", ""]
    if roi is not None:
        inits.append(nh.from_array(np.asarray(roi, np.float32), "roi"))
        ins[1] = "roi"
    if scales is not None:
        inits.append(nh.from_array(np.asarray(scales, np.float32), "scales"))
        ins[2] = "scales"
    if sizes is not None:
        inits.append(nh.from_array(np.asarray(sizes, np.int64), "sizes"))
        ins[3] = "sizes"
    while ins[-1] == "":
        ins.pop()
    nodes = [h.make_node("Resize", ins, ["r" if extra_nodes else "y"], **attrs), *extra_nodes]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", dtype, list(x_shape))],
                     [h.make_tensor_value_info("y", dtype, None)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _ops(result):
    return result.stats["op_histogram"]


NEAREST = [
    ("asymmetric", "floor", [1, 1, 2, 2]),
    ("asymmetric", "floor", [1, 1, 3, 1.5]),
    ("asymmetric", "round_prefer_ceil", [1, 1, 2, 3]),
    ("half_pixel", "round_prefer_floor", [1, 1, 2, 2]),
    ("half_pixel", "round_prefer_floor", [1, 1, 0.5, 0.5]),
    ("half_pixel", "round_prefer_ceil", [1, 1, 0.5, 2]),
    ("half_pixel", "floor", [1, 1, 1.5, 2.5]),
    ("half_pixel", "ceil", [1, 1, 2, 2]),
    ("tf_half_pixel_for_nn", "floor", [1, 1, 2, 0.5]),
    ("align_corners", "round_prefer_floor", [1, 1, 2, 3]),
    ("pytorch_half_pixel", "round_prefer_floor", [1, 1, 2, 2]),
]


@pytest.mark.parametrize("ctm,nearest,scales", NEAREST)
def test_nearest_matches_onnxruntime(ctm, nearest, scales):
    m = _resize((2, 3, 6, 8), scales=scales, mode="nearest", coordinate_transformation_mode=ctm,
                nearest_mode=nearest)
    assert_converts(m, rtol=0, atol=0)


LINEAR = [
    ("half_pixel", [1, 1, 2, 2]),
    ("half_pixel", [1, 1, 0.5, 0.5]),
    ("half_pixel", [1, 1, 3, 1.5]),
    ("pytorch_half_pixel", [1, 1, 2, 2]),
    ("asymmetric", [1, 1, 2, 4]),
    ("asymmetric", [1, 1, 0.5, 1]),
    ("align_corners", [1, 1, 2, 2]),
    ("half_pixel_symmetric", [1, 1, 1.7, 2.3]),
]


@pytest.mark.parametrize("ctm,scales", LINEAR)
def test_linear_matches_onnxruntime(ctm, scales):
    m = _resize((1, 3, 6, 8), scales=scales, mode="linear", coordinate_transformation_mode=ctm)
    assert_converts(m, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attrs", [
    dict(coordinate_transformation_mode="half_pixel"),
    dict(coordinate_transformation_mode="align_corners", cubic_coeff_a=-0.5),
    dict(coordinate_transformation_mode="asymmetric", exclude_outside=1),
    dict(coordinate_transformation_mode="half_pixel", antialias=1),
])
@pytest.mark.parametrize("sizes", [[1, 2, 12, 16], [1, 2, 4, 3]])
def test_cubic_uses_gather_taps(attrs, sizes):
    res = assert_converts(_resize((1, 2, 6, 8), sizes=sizes, mode="cubic", **attrs), rtol=1e-4, atol=1e-4)
    assert "GATHER" in _ops(res) and "RESIZE_BILINEAR" not in _ops(res)


def test_linear_antialias_downscale():
    assert_converts(_resize((1, 2, 12, 16), sizes=[1, 2, 5, 4], mode="linear", antialias=1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode,ctm,flags", [
    ("linear", "half_pixel", (False, True)),
    ("linear", "pytorch_half_pixel", (False, True)),
    ("linear", "align_corners", (True, False)),
    ("linear", "asymmetric", (False, False)),
    ("nearest", "asymmetric", (False, False)),
])
def test_native_op_where_it_matches(mode, ctm, flags):
    nearest = "floor" if mode == "nearest" else "round_prefer_floor"
    res = assert_converts(_resize((1, 3, 5, 7), sizes=[1, 3, 10, 14], mode=mode, coordinate_transformation_mode=ctm,
                                  nearest_mode=nearest), rtol=1e-5, atol=1e-5)
    opcode = "RESIZE_BILINEAR" if mode == "linear" else "RESIZE_NEAREST_NEIGHBOR"
    assert _ops(res) == {opcode: 1}
    it_opts = _resize_options(res.data)
    assert it_opts == flags


def _resize_options(data: bytes):
    from ai_edge_litert import schema_py_generated as fb
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    op = model.subgraphs[0].operators[0]
    return bool(op.builtinOptions.alignCorners), bool(op.builtinOptions.halfPixelCenters)


def test_nearest_rounding_tflite_lacks_falls_back_to_gather():
    # half_pixel + ceil at 2x picks 0, 1, 1, 2, 2, ...: no align_corners/half_pixel_centers setting does that
    res = assert_converts(_resize((1, 1, 8, 8), scales=[1, 1, 2, 2], mode="nearest", nearest_mode="ceil"),
                          rtol=0, atol=0)
    assert "RESIZE_NEAREST_NEIGHBOR" not in _ops(res) and _ops(res)["GATHER"] == 2


def test_half_pixel_round_prefer_floor_downscale_is_tflite_nearest():
    # (i + 0.5) * 2 - 0.5 rounds half down to 2i: TFLite's plain floor(i * 2)
    res = assert_converts(_resize((1, 2, 8, 8), scales=[1, 1, 0.5, 0.5], mode="nearest"), rtol=0, atol=0)
    assert _ops(res) == {"RESIZE_NEAREST_NEIGHBOR": 1}


def test_tf_crop_and_resize_with_extrapolation():
    m = _resize((1, 2, 6, 6), roi=[0, 0, -0.2, 0.3, 1, 1, 0.9, 1.4], sizes=[1, 2, 5, 7], mode="linear",
                coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-3.0)
    assert_converts(m, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("policy,sizes", [("not_larger", [9, 20]), ("not_smaller", [9, 20])])
def test_axes_and_keep_aspect_ratio(policy, sizes):
    m = _resize((1, 2, 5, 6), sizes=sizes, axes=[2, 3], mode="nearest", keep_aspect_ratio_policy=policy)
    assert_converts(m, rtol=0, atol=0)


def test_non_spatial_axis_and_rank_3():
    assert_converts(_resize((2, 3, 5), scales=[1, 2, 1.5], mode="linear"), rtol=1e-5, atol=1e-5)
    assert_converts(_resize((2, 6, 4, 4), scales=[1, 0.5, 1, 1], mode="nearest"), rtol=0, atol=0)


def test_int32_nearest():
    m = _resize((1, 2, 3, 4), scales=[1, 1, 2, 2], mode="nearest", dtype=TP.INT32)
    assert_converts(m, rtol=0, atol=0)


def test_opset10_resize_and_upsample():
    for op, opset in (("Resize", 10), ("Upsample", 9)):
        for mode, scales in (("nearest", [1, 1, 2, 1.5]), ("linear", [1, 1, 2, 3])):
            node = h.make_node(op, ["x", "s"], ["y"], mode=mode)
            g = h.make_graph([node], "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 2, 4, 5])],
                             [h.make_tensor_value_info("y", TP.FLOAT, None)],
                             [nh.from_array(np.asarray(scales, np.float32), "s")])
            assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", opset)]), rtol=1e-5, atol=1e-5)
    node = h.make_node("Resize", ["x", "s"], ["y"], mode="nearest")  # downscale: ceil in opset 10
    g = h.make_graph([node], "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 1, 7, 7])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)],
                     [nh.from_array(np.asarray([1, 1, 0.6, 0.75], np.float32), "s")])
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 10)]), rtol=0, atol=0)


def test_upsample_opset7_attribute_scales():
    node = h.make_node("Upsample", ["x"], ["y"], mode="nearest", scales=[1.0, 1.0, 2.0, 3.0])
    g = h.make_graph([node], "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 2, 3, 4])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 2, 6, 12])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 7)])
    feeds = random_feeds(m)
    got = run_tflite(convert(m), feeds)["y"]
    np.testing.assert_array_equal(got, feeds["x"].repeat(2, axis=2).repeat(3, axis=3))


def test_cnn_upsampling_path_has_no_transposes():
    w = [nh.from_array(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "W1"),
         nh.from_array(RNG.standard_normal((4, 4, 3, 3)).astype(np.float32), "W2")]
    for mode, ctm in (("nearest", "asymmetric"), ("linear", "half_pixel"), ("cubic", "half_pixel")):
        m = _resize((1, 3, 6, 6), scales=[1, 1, 2, 2], mode=mode, coordinate_transformation_mode=ctm,
                    nearest_mode="floor", extra_nodes=[h.make_node("Conv", ["r", "W2"], ["y"], pads=[1, 1, 1, 1])])
        g = m.graph
        g.node.insert(0, h.make_node("Conv", ["x", "W1"], ["c"], pads=[1, 1, 1, 1]))
        g.node[1].input[0] = "c"
        g.initializer.extend(w)
        assert_converts(m, rtol=1e-4, atol=1e-4, max_transposes=0)


@pytest.mark.parametrize("ctm,mode,nearest", [
    ("half_pixel", "linear", ""), ("align_corners", "cubic", ""), ("half_pixel_symmetric", "cubic", ""),
    ("tf_crop_and_resize", "linear", ""), ("asymmetric", "nearest", "round_prefer_floor"),
])
def test_taps_equal_the_onnx_reference(ctm, mode, nearest):
    """The per-axis taps, applied with numpy, reproduce onnx.reference on a 1-D resize (fractional scale)."""
    x = RNG.standard_normal((1, 9)).astype(np.float32)
    roi = [0, 0.1, 1, 0.8] if ctm == "tf_crop_and_resize" else None
    m = _resize((1, 9), scales=[1, 1.7], roi=roi, mode=mode, coordinate_transformation_mode=ctm,
                **({"nearest_mode": nearest} if nearest else {}))
    want = ReferenceEvaluator(m).run(None, {"x": x})[0]
    from edgepack.targets.tflite.ops.resize import _spec
    from edgepack.targets.tflite.context import Context
    ctx = Context(onnx.shape_inference.infer_shapes(m))
    taps = onnx_taps(_spec(m.graph.node[0], ctx, legacy=False), 1)
    got = (x[0][taps.index] * taps.weight).sum(axis=1) + taps.bias
    np.testing.assert_allclose(got, want[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_in,n_out", [(3, 7), (8, 5), (4, 4), (1, 3), (6, 1)])
def test_tflite_taps_model_the_kernel(n_in, n_out):
    """Our numpy copy of the TFLite kernels' index/weight maps agrees with the real interpreter."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.interpreter import Interpreter

    from edgepack.targets.tflite.ir import Graph
    from edgepack.targets.tflite.writer import serialize
    x = RNG.standard_normal((1, n_in, 1, 1)).astype(np.float32)
    for opcode, cls in (("RESIZE_NEAREST_NEIGHBOR", fb.ResizeNearestNeighborOptionsT),
                        ("RESIZE_BILINEAR", fb.ResizeBilinearOptionsT)):
        for align, half in ((False, False), (False, True), (True, False)):
            g = Graph()
            g.inputs.append(g.add("x", x.shape, np.float32))
            g.outputs.append(g.add("y", (1, n_out, 1, 1), np.float32))
            opts = cls()
            opts.alignCorners, opts.halfPixelCenters = align, half
            g.op(opcode, ["x", g.const(np.asarray([n_out, 1], np.int32))], ["y"], opts)
            it = Interpreter(model_content=serialize(g))
            it.allocate_tensors()
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            got = it.get_tensor(it.get_output_details()[0]["index"]).ravel()
            taps = tflite_taps(opcode, n_in, n_out, align, half)
            np.testing.assert_allclose(got, (x.ravel()[taps.index] * taps.weight).sum(axis=1), rtol=1e-5, atol=1e-6)


def test_runtime_sizes_are_refused_with_a_reason():
    node = h.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest")
    g = h.make_graph([node], "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 2, 3, 4]),
                                   h.make_tensor_value_info("sizes", TP.INT64, [4])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 2, 6, 8])])
    with pytest.raises(UnsupportedOpsError, match="computed at run time"):
        preflight(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]))


def test_linear_resize_of_integers_is_refused():
    with pytest.raises(UnsupportedOpsError, match="float32 only"):
        preflight(onnx.shape_inference.infer_shapes(
            _resize((1, 1, 2, 2), scales=[1, 1, 2, 2], mode="linear", dtype=TP.INT32)))
