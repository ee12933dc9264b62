"""QDQ quantization for HTP (``targets/qualcomm/quantize.py``) and the pitfalls it handles, on the simulator."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper as h
from onnx import numpy_helper as nh
from onnxruntime.quantization import quantize as ort_quantize
from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

from edgepack.errors import DynamicShapeError, EdgepackError
from edgepack.targets.qualcomm import htp
from edgepack.targets.qualcomm.preprocess import prepare
from edgepack.targets.qualcomm.quantize import _Reader, quantize

from .kit import conv_net, max_rel_error, model, needs_htp, reference, samples


def _q_types(qdq: onnx.ModelProto) -> dict[str, int]:
    """float tensor -> element type of the QuantizeLinear that quantizes it."""
    zps = {t.name: t.data_type for t in qdq.graph.initializer}
    return {n.input[0]: zps[n.input[2]] for n in qdq.graph.node if n.op_type == "QuantizeLinear"}


def _dq_of(qdq: onnx.ModelProto, weight: str) -> np.ndarray:
    inits = {t.name: t for t in qdq.graph.initializer}
    for n in qdq.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0].startswith(weight + "_"):
            return nh.to_array(inits[n.input[1]]), inits[n.input[0]].data_type
    raise AssertionError(f"no DequantizeLinear of {weight}")


@needs_htp
@pytest.mark.parametrize("activations,elem,bound", [("uint8", onnx.TensorProto.UINT8, 0.05),
                                                    ("uint16", onnx.TensorProto.UINT16, 0.01)])
def test_a_cnn_quantizes_per_channel_and_runs_on_htp(activations, elem, bound):
    m, feeds = conv_net(), samples([1, 3, 16, 16], n=6)
    qdq = quantize(m, feeds, activations=activations)
    assert _q_types(qdq)["r1"] == elem
    scale, wtype = _dq_of(qdq, "w2")
    assert scale.shape == (16,) and wtype == onnx.TensorProto.INT8          # per output channel, int8
    fc_scale, _ = _dq_of(qdq, "fc")
    assert fc_scale.shape == (10,)                                          # Gemm too, with its [1, N] bias
    err = max_rel_error(htp.run(qdq, feeds), reference(m, feeds))
    assert 1e-5 < err < bound, err                                          # quantized, and close


@needs_htp
def test_reciprocal_becomes_div_because_htp_gets_it_wrong(tmp_path):
    m = model([h.make_node("Reciprocal", ["x"], ["y"], name="r")], {}, [("x", [1, 64])], ["y"])
    feeds = samples([1, 64], low=0.05, high=0.2)
    ref = reference(m, feeds)
    # the pitfall itself: onnxruntime's QNN recipe on the model as it is gives a fraction of 1/x on HTP
    src, out = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(m, src)
    ort_quantize(src, out, get_qnn_qdq_config(src, _Reader(feeds), per_channel=True))
    raw = onnx.load(out)
    ratio = np.median(htp.run(raw, feeds[:1])[0][0] / ref[0][0])
    assert ratio < 0.5, ratio
    qdq = quantize(m, feeds)
    assert "Reciprocal" not in {n.op_type for n in qdq.graph.node} and "Div" in {n.op_type for n in qdq.graph.node}
    assert max_rel_error(htp.run(qdq, feeds), ref) < 0.02


@needs_htp
def test_layernorm_weight_is_uint8_so_htp_takes_it():
    rng = np.random.default_rng(2)
    m = model([h.make_node("MatMul", ["x", "w"], ["a"], name="mm"),
               h.make_node("LayerNormalization", ["a", "s", "b"], ["y"], name="ln", axis=-1)],
              {"w": (rng.standard_normal((32, 32)) * 0.2).astype(np.float32),
               "s": (1 + 0.1 * rng.standard_normal(32)).astype(np.float32),
               "b": (0.1 * rng.standard_normal(32)).astype(np.float32)}, [("x", [1, 8, 32])], ["y"])
    feeds = samples([1, 8, 32])
    qdq = quantize(m, feeds)
    _, stype = _dq_of(qdq, "s")
    assert stype == onnx.TensorProto.UINT8
    assert max_rel_error(htp.run(qdq, feeds), reference(m, feeds)) < 0.05


@needs_htp
@pytest.mark.parametrize("where", [False, True])
def test_minus_inf_mask_constants_give_finite_scales_and_the_right_softmax(where):
    mask = np.zeros((1, 8), np.float32)
    mask[0, 5:] = -np.inf
    if where:
        nodes = [h.make_node("Mul", ["x", "two"], ["x2"], name="scale"),
                 h.make_node("Where", ["keep", "x2", "minf"], ["a"], name="mask"),
                 h.make_node("Softmax", ["a"], ["y"], name="sm", axis=-1)]
        inits = {"two": np.array(2, np.float32), "keep": np.isfinite(mask), "minf": np.array(-np.inf, np.float32)}
    else:
        nodes = [h.make_node("Add", ["x", "m"], ["a"], name="mask"), h.make_node("Softmax", ["a"], ["y"], name="sm",
                                                                                 axis=-1)]
        inits = {"m": mask}
    m = model(nodes, inits, [("x", [1, 8])], ["y"])
    feeds = samples([1, 8], n=6)
    qdq = quantize(m, feeds)
    for t in qdq.graph.initializer:
        assert np.isfinite(nh.to_array(t).astype(np.float64)).all(), t.name
    got = htp.run(qdq, feeds)
    assert not any(np.isnan(g[0]).any() for g in got)
    assert max(float(g[0][0, 5:].max()) for g in got) < 1e-3               # masked: no weight
    assert max_rel_error(got, reference(m, feeds)) < 0.05


@needs_htp
def test_log_of_zero_in_calibration_gets_a_finite_range():
    m = model([h.make_node("Relu", ["x"], ["r"], name="relu"), h.make_node("Log", ["r"], ["a"], name="log"),
               h.make_node("Sigmoid", ["a"], ["y"], name="sig")], {}, [("x", [1, 16])], ["y"])
    feeds = samples([1, 16])
    qdq = quantize(m, feeds)
    scales = [nh.to_array(t) for t in qdq.graph.initializer if t.name.endswith("_scale")]
    assert all(np.isfinite(s).all() for s in scales)
    assert max_rel_error(htp.run(qdq, feeds), reference(m, feeds)) < 0.05


@needs_htp
@pytest.mark.parametrize("bias_shape", [(1, 10), (2, 10), ()])
def test_gemm_bias_of_rank_other_than_one_with_per_channel_int8_weights(bias_shape):
    rng = np.random.default_rng(4)
    m = model([h.make_node("Gemm", ["x", "w", "c"], ["y"], name="g", beta=0.5)],
              {"w": rng.standard_normal((16, 10)).astype(np.float32),
               "c": rng.standard_normal(bias_shape).astype(np.float32)}, [("x", [2, 16])], ["y"])
    feeds = samples([2, 16])
    qdq = quantize(m, feeds)
    scale, _ = _dq_of(qdq, "w")
    assert scale.shape == (10,)
    assert max_rel_error(htp.run(qdq, feeds), reference(m, feeds)) < 0.05


@needs_htp
def test_an_opset_11_model_is_upgraded_so_per_channel_dequantize_is_valid():
    m, feeds = conv_net(opset=11), samples([1, 3, 16, 16])
    qdq = quantize(m, feeds)
    onnx.checker.check_model(qdq)
    assert min(o.version for o in qdq.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert max_rel_error(htp.run(qdq, feeds), reference(m, feeds)) < 0.05


def test_metadata_props_are_dropped_and_prepare_is_idempotent():
    m = conv_net()
    onnx.helper.set_model_props(m, {"author": "someone", "license": "x"})
    ready = prepare(m)
    assert len(ready.metadata_props) == 0 and len(m.metadata_props) == 2     # the input is left alone
    again = prepare(ready)
    assert [n.name for n in again.graph.node] == [n.name for n in ready.graph.node]


@needs_htp
def test_a_constant_roi_before_resize_is_folded():
    roi = h.make_node("Constant", [], ["roi"], name="cst", value=nh.from_array(np.zeros((0,), np.float32)))
    m = model([roi, h.make_node("Relu", ["x"], ["r"], name="relu"),
               h.make_node("Resize", ["r", "roi", "sc"], ["y"], name="rs", mode="nearest")],
              {"sc": np.array([1, 1, 2, 2], np.float32)}, [("x", [1, 4, 8, 8])], ["y"], opset=13)
    feeds = samples([1, 4, 8, 8])
    qdq = quantize(m, feeds)
    assert "Constant" not in {n.op_type for n in qdq.graph.node}
    assert max_rel_error(htp.run(qdq, feeds), reference(m, feeds)) < 0.05


def test_overrides_set_16_bit_or_float_per_node():
    m, feeds = conv_net(), samples([1, 3, 16, 16])
    qdq = quantize(m, feeds, overrides={"conv2": "a16", "gap": "float"})
    types = _q_types(qdq)
    assert types["c2"] == onnx.TensorProto.UINT16 and types["c1"] == onnx.TensorProto.UINT8
    assert "p" not in types                                                  # the float node's output
    gap = next(n for n in qdq.graph.node if n.op_type == "GlobalAveragePool")
    assert gap.input[0].endswith("DequantizeLinear_Output")                  # fed dequantized, runs in float
    with pytest.raises(EdgepackError, match="does not have: nope"):
        quantize(m, feeds, overrides={"nope": "a16"})
    with pytest.raises(EdgepackError, match="take a16 or float"):
        quantize(m, feeds, overrides={"conv1": "int4"})


def test_a_dynamic_shape_model_is_refused_naming_the_input():
    m = conv_net()
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    with pytest.raises(DynamicShapeError, match=r"x\[0\]=N") as err:
        quantize(m, samples([1, 3, 16, 16]))
    assert "--input-shape x=" in err.value.hint


def test_cpu_run_only_when_asked(monkeypatch):
    m, feeds = conv_net(), samples([1, 3, 16, 16], n=2)
    qdq = quantize(m, feeds)
    monkeypatch.setattr(htp, "available", lambda: False)                     # as without onnxruntime-qnn
    with pytest.raises(EdgepackError, match="onnxruntime-qnn is not installed"):
        htp.run(qdq, feeds)
    got = htp.run(qdq, feeds, allow_cpu=True)
    assert max_rel_error(got, reference(m, feeds)) < 0.05


def test_batchnorm_is_folded_even_when_no_qnn_fusion_fires():
    rng = np.random.default_rng(5)
    m = model([h.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
               h.make_node("BatchNormalization", ["c", "g", "b", "mu", "var"], ["y"], name="bn")],
              {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "g": np.full(4, 1.5, np.float32),
               "b": np.full(4, 0.1, np.float32), "mu": np.zeros(4, np.float32), "var": np.ones(4, np.float32)},
              [("x", [1, 3, 8, 8])], ["y"])
    assert [n.op_type for n in prepare(m).graph.node] == ["Conv"]


def test_an_erf_gelu_is_fused_into_gelu():
    inits = {"s": np.array(np.sqrt(2), np.float32), "one": np.array(1, np.float32), "half": np.array(.5, np.float32)}
    m = model([h.make_node("Div", ["x", "s"], ["d"], name="div"), h.make_node("Erf", ["d"], ["e"], name="erf"),
               h.make_node("Add", ["e", "one"], ["a"], name="add"), h.make_node("Mul", ["x", "a"], ["p"], name="mul"),
               h.make_node("Mul", ["p", "half"], ["y"], name="half")], inits, [("x", [1, 16])], ["y"])
    assert [n.op_type for n in prepare(m).graph.node] == ["Gelu"]


@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_calibrating_once_gives_the_same_qdq_models_as_calibrating_every_time(method):
    from edgepack.targets.qualcomm.quantize import calibrate
    m, feeds = conv_net(), samples([1, 3, 16, 16])
    cal = calibrate(m, feeds, method)
    assert not cal.reused
    for overrides, act in (({}, "uint8"), ({"conv2": "a16"}, "uint8"), ({"gap": "float"}, "uint16")):
        fresh = quantize(m, feeds, activations=act, overrides=overrides, method=method)
        again = quantize(m, feeds, activations=act, overrides=overrides, method=method, calibrated=cal)
        assert cal.reused                                       # onnxruntime's ranges are in its cache file
        assert again.SerializeToString() == fresh.SerializeToString()
    folder = cal.cache.parent
    del cal
    import gc
    gc.collect()
    assert not folder.exists()                                  # the cache folder goes with its owner


@pytest.mark.parametrize("fill", [np.finfo(np.float32).min, -1e9, -1e4])
def test_a_finite_mask_constant_does_not_flatten_the_scores_it_is_added_to(fill):
    # what transformer exporters write: scores + (1 - mask) * finfo.min, then Softmax
    nodes = [h.make_node("Sub", ["one", "keep"], ["inv"], name="invert"),
             h.make_node("Mul", ["inv", "fill"], ["bias"], name="mask_bias"),
             h.make_node("Add", ["x", "bias"], ["a"], name="mask"),
             h.make_node("Softmax", ["a"], ["y"], name="sm", axis=-1)]
    keep = np.ones((1, 16), np.float32)
    keep[0, 12:] = 0.0
    inits = {"one": np.array(1, np.float32), "keep": keep, "fill": np.array(fill, np.float32)}
    m = model(nodes, inits, [("x", [1, 16])], ["y"])
    feeds = samples([1, 16], n=6, low=-4.0, high=4.0)
    ref = reference(m, feeds)
    from edgepack.targets.qualcomm.mixed import cpu_run
    for act in ("uint8", "uint16"):
        qdq = quantize(m, feeds, activations=act)
        got = [[o["y"]] for o in cpu_run(qdq, feeds)]
        assert max(float(g[0][0, 12:].max()) for g in got) < 1e-3            # masked: no weight
        assert max_rel_error(got, ref) < (0.05 if act == "uint8" else 0.01)
    assert float(nh.to_array(next(t for t in m.graph.initializer if t.name == "fill"))) == fill   # input untouched
    # mixed precision: the Softmax at 16 bits after the masked Add (onnxruntime's fixer needs the ranged
    # tensor's type named, else "Desired producer quant_type ... doesn't match")
    qdq = quantize(m, feeds, overrides={"sm": "a16"})
    got = [[o["y"]] for o in cpu_run(qdq, feeds)]
    assert max_rel_error(got, ref) < 0.05


def test_a_matmul_add_that_fusion_turns_into_a_gemm_gets_a_1d_bias():
    rng = np.random.default_rng(3)
    nodes = [h.make_node("MatMul", ["x", "w"], ["mm"], name="dense"),
             h.make_node("Reshape", ["b", "shape"], ["b2"], name="bias_shape"),
             h.make_node("Add", ["mm", "b2"], ["y"], name="bias")]
    inits = {"w": rng.normal(size=(16, 8)).astype(np.float32), "b": rng.normal(size=8).astype(np.float32),
             "shape": np.array([1, 8], np.int64)}
    m = model(nodes, inits, [("x", [1, 16])], ["y"], opset=15)
    prepared = prepare(m)
    inits_p = {t.name: t for t in prepared.graph.initializer}
    for g in (n for n in prepared.graph.node if n.op_type == "Gemm"):
        assert len(g.input) < 3 or len(inits_p[g.input[2]].dims) == 1
    feeds = samples([1, 16])
    from edgepack.targets.qualcomm.mixed import cpu_run
    qdq = quantize(m, feeds)
    got = [[o["y"]] for o in cpu_run(qdq, feeds)]
    assert max_rel_error(got, reference(m, feeds)) < 0.05


@pytest.mark.parametrize("overrides", [{"scores": "a16"}, {"sm": "a16"}, {"mask": "a16"}, {"scores": "a16", "sm": "a16"}])
def test_16_bit_nodes_around_a_masked_add_quantize_and_stay_right(overrides):
    # onnxruntime's mixed-precision fixer infers the masked Add's output type from its 16-bit input (scores)
    # and refused the range override that named another type ("Desired producer quant_type ... doesn't match")
    nodes = [h.make_node("Mul", ["inv", "fill"], ["bias"], name="mask_bias"),
             h.make_node("MatMul", ["x", "w"], ["s"], name="scores"),
             h.make_node("Add", ["s", "bias"], ["a"], name="mask"),
             h.make_node("Softmax", ["a"], ["y"], name="sm", axis=-1)]
    inv = np.zeros((1, 1, 16), np.float32)
    inv[..., 12:] = 1.0
    rng = np.random.default_rng(5)
    inits = {"inv": inv, "fill": np.array(np.finfo(np.float32).min, np.float32),
             "w": (rng.normal(size=(16, 16)) * 0.5).astype(np.float32)}
    m = model(nodes, inits, [("x", [1, 4, 16])], ["y"])
    feeds = samples([1, 4, 16], n=6)
    from edgepack.targets.qualcomm.mixed import cpu_run
    qdq = quantize(m, feeds, overrides=overrides)
    got = [[o["y"]] for o in cpu_run(qdq, feeds)]
    assert max(float(g[0][..., 12:].max()) for g in got) < 1e-3
    assert max_rel_error(got, reference(m, feeds)) < 0.05


def test_names_that_are_another_name_plus_digits_are_renamed_so_the_qdq_model_loads():
    from edgepack.targets.qualcomm.preprocess import unambiguous_tensor_names
    nodes = [h.make_node("Relu", ["x"], ["c"], name="r1"), h.make_node("Neg", ["c"], ["c2"], name="r2"),
             h.make_node("Add", ["c2", "c"], ["y"], name="r3")]
    m = model(nodes, {}, [("x", [1, 4])], ["y"])
    assert unambiguous_tensor_names(m) == 1
    assert [list(n.output) for n in m.graph.node] == [["c"], ["c2_e"], ["y"]] and list(m.graph.node[2].input) == ["c2_e", "c"]
    assert unambiguous_tensor_names(m) == 0


def test_the_real_pitch_model_s_qdq_model_loads_in_onnxruntime():
    # basic-pitch: a Conv output "...conv1d_252" beside its bias "...conv1d_25"; onnxruntime's quantizer made
    # colliding names and a QDQ model that failed with "All inputs to Concat must have same rank" (both quantizers)
    import onnxruntime as ort
    from edgepack.model import load_model
    from edgepack.testing.corpus import INPUT_SHAPES, fetch
    name = "audio_basic_pitch_nmp.onnx"
    m = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
    feeds = samples([int(d.dim_value) for d in m.graph.input[0].type.tensor_type.shape.dim], n=2, low=-0.5, high=0.5)
    feeds = [{m.graph.input[0].name: f[next(iter(f))]} for f in feeds]
    qdq = quantize(m, feeds)
    sess = ort.InferenceSession(qdq.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds[0])
    assert len(outs) == len(m.graph.output) and all(np.isfinite(o).all() for o in outs)
