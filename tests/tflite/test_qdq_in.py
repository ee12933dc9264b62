"""Quantized ONNX in (QDQ and QOperator from onnxruntime's quantize_static, and a real QDQ model): fp32 builds
run the dequantized float twin, int8 builds carry the model's own scales and zero points. The reference is
always onnxruntime running the quantized model itself."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from ai_edge_litert.interpreter import Interpreter

from edgepack.build import build
from edgepack.model import load_model
from edgepack.model.ort import reference_outputs
from edgepack.model.qdq import dequantize, is_quantized
from edgepack.testing.corpus import INPUT_SHAPES, fetch
from tests.tflite.qdq_models import attention_head, conv_net, mlp, quantized

pytestmark = pytest.mark.forked


def _samples(shape, n=6, seed=11):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)]


def _run_ort(path, feeds, input_shapes=None):
    """The quantized model as ONNX defines it, the build's reference (``reference_outputs``: QOperator ops
    expanded to Q/DQ, no fused int8 kernels; those saturate u8s8 sums on CPUs without VNNI)."""
    model = load_model(path, input_shapes=input_shapes)
    return reference_outputs(model, [feeds])[0][model.graph.output[0].name]


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_dequantized_twin_is_float_and_close_to_the_quantized_model(tmp_path, fmt):
    path = quantized(conv_net(), tmp_path, fmt=fmt)
    model = load_model(path)
    assert is_quantized(model)
    flt, info = dequantize(model)
    assert not is_quantized(flt) and info.left == []
    assert {n.op_type for n in flt.graph.node} >= {"Conv", "Add", "MaxPool", "Gemm"}
    assert info.counts["activation_pairs_removed"] >= 8 and len(info.weights) >= 3
    assert {a.dtype for a in info.activations.values()} == {"uint8"}
    onnx.checker.check_model(flt)
    for feeds in _samples([1, 3, 16, 16], 3):
        want, got = _run_ort(path, feeds), _run_ort_model(flt, feeds)
        assert np.abs(got - want).max() <= 0.02 * np.abs(want).max()      # the activations' rounding, no more


def _run_ort_model(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
def test_fp32_build_runs_in_float_and_is_judged_by_the_int8_gate(tmp_path, fmt):
    path = quantized(conv_net(), tmp_path, fmt=fmt)
    res = build(path, targets=["cpu"], precision="fp32", samples=_samples([1, 3, 16, 16]), out=tmp_path / "b")
    cpu = res.manifest["targets"][0]
    assert cpu["precision"] == "fp32" and cpu["parity"]["passed"]
    assert cpu["info"]["dequantized"]["left"] == 0
    assert cpu["info"]["dequantized"]["activation_pairs_removed"] >= 8
    assert cpu["info"]["op_histogram"].get("QUANTIZE", 0) == 0          # no rounding left in the float model
    assert 0 < cpu["parity"]["max_rel_error"] < 0.02 and cpu["parity"]["min_cosine"] > 0.9999
    assert any("judged against onnxruntime running the quantized model" in w for w in res.warnings)


@pytest.mark.parametrize("net,fmt,max_rel", [("conv", "QDQ", 1e-3), ("conv", "QOperator", 1e-3), ("mlp", "QDQ", 0.03)])
def test_int8_build_carries_the_models_own_scales(tmp_path, net, fmt, max_rel):
    model = conv_net() if net == "conv" else mlp()
    path = quantized(model, tmp_path, fmt=fmt)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    res = build(path, targets=["cpu"], precision="int8", samples=_samples(shape), out=tmp_path / "b")
    cpu = res.manifest["targets"][0]
    q = cpu["quantization"]
    assert q["method"] == "model" and q["source"] == "model"
    assert q["model"]["weight_scales"] == q["model"]["weight_scales_used"] >= 2
    assert q["model"]["float_nodes"] == [] and q["model"]["activation_ranges"] >= 8
    assert cpu["parity"]["passed"] and cpu["parity"]["max_rel_error"] <= max_rel, cpu["parity"]
    if net == "conv":
        assert q["float_opcodes"] == []                                  # every op of this net has int8 kernels
        _assert_first_conv_is_the_models(res.path, path)


def _assert_first_conv_is_the_models(bundle, qdq_path):
    """The first CONV_2D's int8 weights and per-channel scales are the model's (OIHW -> OHWI)."""
    from edgepack_runtime.bundle import Bundle
    b = Bundle.open(bundle)
    it = Interpreter(model_content=b.read(b.manifest["targets"][0]["file"]))
    q = onnx.load(str(qdq_path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in q.graph.initializer}
    weight, scale = inits["w1_quantized"], inits["w1_scale"]         # quantize_static's names for w1
    assert weight.dtype == np.int8 and weight.shape == (8, 3, 3, 3) and scale.shape == (8,)
    found = [d for d in it.get_tensor_details() if d["dtype"] == np.int8 and list(d["shape"]) == [8, 3, 3, 3]]
    assert len(found) == 1
    got = it.get_tensor(found[0]["index"])
    np.testing.assert_array_equal(got, weight.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(found[0]["quantization_parameters"]["scales"], scale)


def _fake_quant(path, feeds):
    """onnxruntime with no graph optimization: every QuantizeLinear / DequantizeLinear runs as written, in
    float (the model's definition; the optimized session fuses them into integer kernels that round a little
    differently)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def _int8_outputs(res, samples):
    from edgepack_runtime.bundle import Bundle
    b = Bundle.open(res.path)
    it = Interpreter(model_content=b.read(res.manifest["targets"][0]["file"]))
    it.allocate_tensors()
    out = []
    for feeds in samples:
        it.set_tensor(it.get_input_details()[0]["index"], feeds["x"])
        it.invoke()
        out.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    return it, out


def test_a_bias_the_model_adds_in_float_after_the_rounded_product_stays_there(tmp_path):
    """quantize_static on MatMul alone rounds each product, then adds the bias in float. Folding the bias into
    the FULLY_CONNECTED would move that rounding after the bias, onto a coarser grid (0.012-0.015 off the
    model here, 2 layers); kept apart, the int8 model computes what the model defines."""
    path = quantized(mlp(), tmp_path, op_types=["MatMul"])
    samples = _samples([1, 16, 32])
    res = build(path, targets=["cpu"], precision="int8", samples=samples, out=tmp_path / "b")
    q = res.manifest["targets"][0]["quantization"]
    assert [f["why"] for f in q["model"]["float_nodes"]] == [
        "the model applies this constant in float to the rounded tensor m1",
        "the model applies this constant in float to the rounded tensor m2"]
    it, got = _int8_outputs(res, samples)
    details = {d["name"]: d for d in it.get_tensor_details()}
    scales = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    for name in ("m1", "m2"):                       # the products, rounded on the model's own grids
        assert details[name]["dtype"] == np.int8
        assert details[name]["quantization"][0] == pytest.approx(float(scales[f"{name}_scale"]), rel=1e-6)
    for feeds, y in zip(samples, got):
        assert np.abs(y - _fake_quant(path, feeds)).max() <= 1e-5


def test_a_float_op_the_model_rounds_is_rounded_in_the_int8_model(tmp_path):
    """The cpu policy keeps attention's products of activations and its Softmax in float; the model rounds
    their results (and its output). The int8 model rounds them at the same points with the same parameters
    (QUANTIZE after the float op, DEQUANTIZE for float readers) and matches the model's definition; without
    those roundings it was 0.15-0.71 off an output of about 5.5."""
    path = quantized(attention_head(), tmp_path, op_types=["MatMul", "Softmax"])
    samples = _samples([1, 16, 32])
    res = build(path, targets=["cpu"], precision="int8", samples=samples, out=tmp_path / "b")
    hist = res.manifest["targets"][0]["info"]["op_histogram"]
    assert hist["BATCH_MATMUL"] == 2 and hist["SOFTMAX"] == 1
    it, got = _int8_outputs(res, samples)
    ops = it._get_ops_details()
    names = {d["index"]: d["name"] for d in it.get_tensor_details()}
    produced_by = {names[o["outputs"][0]]: o["op_name"] for o in ops}
    for name in ("s", "p", "y"):                    # rounded right after the float op that makes it
        src = next(o for o in ops if names[o["outputs"][0]] == name)
        assert src["op_name"] == "QUANTIZE" and produced_by[names[src["inputs"][0]]] in ("BATCH_MATMUL", "SOFTMAX")
    for feeds, y in zip(samples, got):
        assert np.abs(y - _fake_quant(path, feeds)).max() <= 1e-5


def test_real_qdq_model_fp32_build_matches_onnxruntime_running_it(tmp_path):
    name = "audio_smart_turn_v3_2_cpu_qdq.onnx"
    shape = INPUT_SHAPES[name]["input_features"]
    rng = np.random.default_rng(5)
    samples = [{"input_features": (0.5 * rng.standard_normal(shape)).astype(np.float32)} for _ in range(3)]
    res = build(fetch(name), targets=["cpu"], precision="fp32", input_shapes=INPUT_SHAPES[name], samples=samples,
                out=tmp_path / "st.edgepack")
    cpu = res.manifest["targets"][0]
    assert cpu["parity"]["passed"] and cpu["parity"]["max_rel_error"] < 0.06, cpu["parity"]
    assert cpu["info"]["dequantized"] == {"qoperators_expanded": 0, "constants_dequantized": 36,
                                          "activation_pairs_removed": 78, "left": 0}


def test_real_qdq_model_int8_keeps_its_scales_and_size(tmp_path):
    """The pipeline's parts on the real model (a full int8 build's layer table takes minutes there)."""
    from edgepack.targets.tflite.convert import lower
    from edgepack.targets.tflite.quant.policy import policy_float_nodes
    from edgepack.targets.tflite.quant.qdq import model_quant
    name = "audio_smart_turn_v3_2_cpu_qdq.onnx"
    path = fetch(name)
    model = load_model(path, input_shapes=INPUT_SHAPES[name])
    flt, info = dequantize(model)
    low = lower(flt, keep_weights=True, rounded=info.activations)     # as the pipeline lowers a quantized model
    mq = model_quant(flt, info, low)
    assert mq.counts["activation_ranges"] == 80 and mq.weight_scales
    # 21 biases the model adds in float after rounding a MatMul's product stay float nodes (a 22nd bias add,
    # node_linear_25, has its own result rounded as well: folded into its FULLY_CONNECTED)
    assert len(mq.float_nodes) == 21 and "node_linear_25" not in mq.float_nodes
    assert all("in float to the rounded tensor val_" in w for w in mq.float_nodes.values())
    tm = low.finish("int8", ranges=mq.ranges, weight_scales=mq.weight_scales, rounded=mq.rounded,
                    float_origins=policy_float_nodes(flt, "cpu") + list(mq.float_nodes))
    stats = tm.stats["quantization"]
    assert stats["model_weight_scales"] == len(mq.weight_scales) == 31
    assert len(tm.data) < 1.1 * path.stat().st_size                    # int8 weights, as in the source
    it = Interpreter(model_content=tm.data)
    it.allocate_tensors()
    rng = np.random.default_rng(9)
    for _ in range(2):
        x = (0.5 * rng.standard_normal(INPUT_SHAPES[name]["input_features"])).astype(np.float32)
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        got = it.get_tensor(it.get_output_details()[0]["index"])
        want = _run_ort(path, {"input_features": x}, INPUT_SHAPES[name])
        assert abs(float(got.ravel()[0]) - float(want.ravel()[0])) < 0.02


def test_a_quantized_model_is_judged_no_tighter_than_int8_field_by_field():
    from edgepack.build import _gate_for
    from edgepack_runtime.precisions import gate
    assert _gate_for("w8a16", False, None) == gate("w8a16")                   # a float model: its own gate
    g = _gate_for("w8a16", True, None)                                        # (0.99, 0.2, 20 dB, mean)
    assert (g.min_cosine, g.max_rel_error, g.min_snr_db, g.cosine_over) == (0.98, 0.5, 15.0, "mean")
    w8 = _gate_for("w8", True, None)                                          # (0.99, 0.1, no SNR, min)
    assert (w8.min_cosine, w8.max_rel_error, w8.min_snr_db, w8.cosine_over) == (0.98, 0.5, None, "mean")
    assert _gate_for("palettize4", True, None).min_cosine == 0.95            # looser already: kept
    assert _gate_for("fp32", True, {"min_snr_db": 30.0}).min_snr_db == 30.0  # --min-snr-db still wins
