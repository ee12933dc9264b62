"""Full-integer int8: the pass, calibration methods, the layer debugger and mixed precision, run in LiteRT."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.model import load_model
from edgepack.model.ort import run_model
from edgepack.targets.base import QuantOptions
from edgepack.targets.tflite.quant import ranges as calibrate
from edgepack.targets.tflite.quant.full_integer import asymmetric
from edgepack.targets.tflite.quant.layers import debug_layers
from edgepack.targets.tflite.quant.measure import run_tflite
from edgepack.targets.tflite.quant.pipeline import describe, prepare, quantize
from edgepack.verify.layers import rank
from edgepack_runtime.compare import compare_output
from edgepack_runtime.precisions import PRECISIONS


@pytest.fixture
def unblocked(monkeypatch):
    """Thin convolutions as they are (their blocked form, ``passes.block_thin_convs``, has its own tests in
    test_blocked_conv.py): these tests count the ops and channels of the plain graph."""
    from edgepack.targets.tflite import passes
    monkeypatch.setattr(passes, "_block_size", lambda *a, **k: None)


def _arr(name, a):
    return nh.from_array(np.asarray(a, np.float32), name)


def _save(path, nodes, inits, xshape, yname, yshape):
    g = h.make_graph(nodes, "m", [h.make_tensor_value_info("x", TP.FLOAT, xshape)],
                     [h.make_tensor_value_info(yname, TP.FLOAT, yshape)], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return load_model(path)


def outlier_cnn(path, scale=1000.0):
    """conv2's output channel 0 is ``scale`` times larger than the rest; conv3 divides it back, so the
    fp32 function is ordinary but a per-tensor int8 range for conv2's output crushes the other channels."""
    rng = np.random.default_rng(0)
    w2 = rng.standard_normal((8, 8, 1, 1)) * 0.3
    b2 = rng.standard_normal(8) * 0.1
    w2[0] *= scale
    b2[0] *= scale
    w3 = rng.standard_normal((8, 8, 1, 1)) * 0.3
    w3[:, 0] /= scale
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
             h.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             h.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3"),
             h.make_node("Relu", ["c3"], ["r3"], name="relu3"),
             h.make_node("GlobalAveragePool", ["r3"], ["g"], name="gap"),
             h.make_node("Flatten", ["g"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w4", "b4"], ["y"], transB=1, name="fc")]
    inits = [_arr("w1", rng.standard_normal((8, 3, 3, 3)) * 0.3), _arr("b1", rng.standard_normal(8) * 0.1),
             _arr("w2", w2), _arr("b2", b2), _arr("w3", w3), _arr("b3", rng.standard_normal(8) * 0.1),
             _arr("w4", rng.standard_normal((10, 8))), _arr("b4", np.zeros(10))]
    return _save(path, nodes, inits, [1, 3, 16, 16], "y", [1, 10])


def mixed_net(path):
    """Conv, depthwise, pooling, sigmoid/mul (swish), concat, mean, FC, softmax: the common int8 kernels."""
    rng = np.random.default_rng(1)
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             h.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             h.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             h.make_node("Conv", ["p1", "w2", "b2"], ["c2"], group=8, pads=[1, 1, 1, 1], name="dw"),
             h.make_node("Sigmoid", ["c2"], ["s2"], name="sig"),
             h.make_node("Mul", ["c2", "s2"], ["sw"], name="swish"),
             h.make_node("Concat", ["sw", "p1"], ["cat"], axis=1, name="cat"),
             h.make_node("GlobalAveragePool", ["cat"], ["g"], name="gap"),
             h.make_node("Flatten", ["g"], ["f"], name="flat"),
             h.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc")]
    inits = [_arr("w1", rng.standard_normal((8, 3, 3, 3)) * 0.3), _arr("b1", rng.standard_normal(8) * 0.1),
             _arr("w2", rng.standard_normal((8, 1, 3, 3)) * 0.3), _arr("b2", rng.standard_normal(8) * 0.1),
             _arr("w3", rng.standard_normal((10, 16))), _arr("b3", rng.standard_normal(10) * 0.1)]
    return _save(path, nodes, inits, [1, 3, 16, 16], "y", [1, 10])


def _samples(n, shape=(1, 3, 16, 16), seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)]


def _quantize(model, samples, **finish):
    low, ranges, _ = prepare(model, samples, finish.pop("method", "minmax"))
    return low, ranges, low.finish("int8", ranges=ranges, **finish)


def _figures(model, tm, samples):
    got = run_tflite(tm.data, tm.io, samples, ["y"])
    ref = [dict(zip(["y"], run_model(model, s, ["y"]))) for s in samples]
    return compare_output([g["y"] for g in got], [r["y"] for r in ref])


def _details(tm):
    interp = calibrate.interpreter(tm.data, preserve=False)
    return {d["name"]: d for d in interp.get_tensor_details()}


def test_every_op_runs_int8_with_per_channel_weights_and_int32_bias(tmp_path, unblocked):
    model = mixed_net(tmp_path / "m.onnx")
    samples = _samples(24)
    low, ranges, tm = _quantize(model, samples[:16])
    hist = tm.stats["op_histogram"]
    assert tm.stats["quantization"]["float_ops"] == []
    assert hist.get("DEQUANTIZE") == 1                  # the float output edge
    assert hist.get("QUANTIZE") == 1                    # the float input edge (the pooled branch into the
    #                                                     concat shares its parameters: quant/speed.py)
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LOGISTIC", "MUL", "CONCATENATION"):
        assert hist.get(op) == 1, op
    types = {t.name: t for t in tm.graph.tensors.values()}
    conv = next(op for op in tm.graph.ops if op.opcode == "CONV_2D")
    w, b, x = types[conv.inputs[1]], types[conv.inputs[2]], types[conv.inputs[0]]
    assert w.dtype == np.int8 and len(w.quant.scale) == 8 and w.quant.quantizedDimension == 0
    assert np.abs(w.data).max() == 127 and w.quant.zeroPoint == [0] * 8
    assert b.dtype == np.int32
    np.testing.assert_allclose(b.quant.scale, np.float64(x.quant.scale[0]) * np.asarray(w.quant.scale), rtol=1e-6)
    dw = next(op for op in tm.graph.ops if op.opcode == "DEPTHWISE_CONV_2D")
    assert types[dw.inputs[1]].quant.quantizedDimension == 3
    fig = _figures(model, tm, samples[16:])
    assert fig["cosine"] >= 0.99 and fig["snr_db"] >= 20, fig
    assert len(tm.data) < 0.6 * len(low.finish("fp32").data) + 4096


@pytest.mark.parametrize("io,dtype", [("int8", np.int8), ("uint8", np.uint8)])
def test_quantized_model_io(tmp_path, io, dtype):
    model = mixed_net(tmp_path / "m.onnx")
    samples = _samples(20)
    _, _, tm = _quantize(model, samples[:12], io=io)
    details = _details(tm)
    interp = calibrate.interpreter(tm.data, preserve=False)
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert inp["dtype"] == dtype and out["dtype"] == dtype and inp["quantization"][0] > 0
    assert details and tm.stats["quantization"]["io"] == io
    fig = _figures(model, tm, samples[12:])           # the runtime's session quantizes / dequantizes
    assert fig["cosine"] >= 0.99, fig


def test_calibration_methods_clip_outliers():
    rng = np.random.default_rng(0)
    v = rng.standard_normal(60000).astype(np.float32)
    v[:3] = [80.0, -60.0, 70.0]                       # three outliers in 60k values
    stats = {"t": calibrate.Stats(float(v.min()), float(v.max()), v)}
    lo_mm, hi_mm = calibrate.choose_ranges(stats, "minmax")["t"]
    lo_p, hi_p = calibrate.choose_ranges(stats, "percentile")["t"]
    lo_mse, hi_mse = calibrate.choose_ranges(stats, "mse")["t"]
    assert (lo_mm, hi_mm) == (-60.0, 80.0)
    assert 3 < hi_p < 6 and -6 < lo_p < -3
    heavy = rng.standard_t(2, 60000).astype(np.float32)      # heavy tails: percentile clips too much
    stats = {"t": calibrate.Stats(float(heavy.min()), float(heavy.max()), heavy)}
    err = {}
    for method in calibrate.METHODS:
        lo, hi = calibrate.choose_ranges(stats, method)["t"]
        scale, zp = asymmetric(lo, hi)
        q = (np.clip(np.round(heavy / scale) + zp, -128, 127) - zp) * scale
        err[method] = float(np.mean((q - heavy) ** 2))
    assert err["mse"] <= err["minmax"] and err["mse"] < 0.5 * err["percentile"], err
    narrow = np.concatenate([rng.uniform(-1, 1, 59000), rng.uniform(-40, 40, 1000)]).astype(np.float32)
    stats = {"t": calibrate.Stats(float(narrow.min()), float(narrow.max()), narrow)}
    lo, hi = calibrate.choose_ranges(stats, "mse")["t"]
    assert hi < 40 and lo > -40                    # a broad thin tail does get clipped
    with pytest.raises(ValueError):
        calibrate.choose_ranges(stats, "kl")


@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=400), min_size=1, max_size=6),
       q=st.sampled_from([99.99, 0.01, 100.0, 0.0]))
def test_percentile_tails_merged_sample_by_sample_are_exact(chunks, q):
    """The percentile read off tails kept per sample equals numpy's percentile of all the values, whatever
    the values and however they are split into samples (same size each, as a static graph gives)."""
    size = min(len(c) for c in chunks)
    arrays = [np.asarray(c[:size], np.float32) for c in chunks]
    k = calibrate._tail_size(size, len(arrays))
    top = bottom = None
    for v in arrays:
        top, bottom = calibrate._merge(top, v, k, largest=True), calibrate._merge(bottom, v, k, largest=False)
    every = np.concatenate(arrays)
    s = calibrate.Stats(float(every.min()), float(every.max()), every[:1], every.size, top, bottom)
    want = float(np.percentile(every.astype(np.float64), q))
    # the tails are float32 (as observed): interpolating between two of them rounds at float32's step of the
    # larger one, not of the result (-64 and 1.7e-4 at 99.99 with two values: 3.5e-6 off a result of -0.006)
    assert abs(s.percentile(q) - want) <= 1e-6 * max(1.0, float(np.abs(every).max()))


def test_percentile_ranges_do_not_depend_on_the_other_tensors():
    """A tensor's observed stats are the same whether or not other tensors are observed with it (the random
    sample is drawn per tensor; before, one generator shared by all moved every sample)."""
    rng = np.random.default_rng(0)
    g = h.make_graph([h.make_node("Relu", ["x"], ["a"]), h.make_node("Exp", ["a"], ["b"]),
                      h.make_node("Tanh", ["b"], ["y"])], "g",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, 64, 64, 64])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 64, 64, 64])])
    import tempfile
    from pathlib import Path
    path = Path(tempfile.mkdtemp()) / "g.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    from edgepack.targets.tflite.convert import lower
    low = lower(load_model(path))
    samples = [{"x": rng.standard_t(3, (1, 64, 64, 64)).astype(np.float32)} for _ in range(3)]
    names = low.activations()
    last = names[-1]
    alone = calibrate.observe(low.float_bytes(), low.io, samples, [last])[last]
    together = calibrate.observe(low.float_bytes(), low.io, samples, names)[last]
    assert np.array_equal(alone.values, together.values) and alone.values.size == calibrate.VALUES_PER_TENSOR - 1
    assert alone.n == 3 * 64 ** 3 and alone.percentile(99.99) == together.percentile(99.99)


def test_debugger_names_the_outlier_layer_and_keeping_it_float_restores_accuracy(tmp_path):
    model = outlier_cnn(tmp_path / "o.onnx")
    samples = _samples(24)
    low, ranges, tm = _quantize(model, samples[:16])
    naive = _figures(model, tm, samples[16:])
    assert naive["cosine"] < 0.95                        # per-tensor int8 breaks this model
    rows = debug_layers(low.graph, low.float_bytes(), tm.graph, tm.data, low.io, samples[16:20])
    worst = rank(rows)[0]
    assert worst["origin"] == "conv2" and worst["op"] == "CONV_2D" and worst["worst_channel"] != 0
    assert worst["quant_snr_db"] < 15 < min(r["quant_snr_db"] for r in rank(rows)[1:])
    kept = low.finish("int8", ranges=ranges, keep_float=[worst["tensor"]])
    fixed = _figures(model, kept, samples[16:])
    assert fixed["cosine"] >= 0.999, fixed
    assert kept.stats["quantization"]["float_opcodes"] == ["CONV_2D"]


def test_mixed_precision_finds_the_layer_itself(tmp_path, unblocked):
    model = outlier_cnn(tmp_path / "o.onnx")
    samples = _samples(30)
    ref = [dict(zip(["y"], run_model(model, s, ["y"]))) for s in samples[20:]]
    # cross-layer equalization alone repairs this model (tests/transforms): the search is tested without it
    no_transforms = {"norms": "off", "cle": "off", "smooth": "off", "sum_round": "off", "bias_correction": "off"}
    result = quantize(model, samples[:20], samples[20:], ref, PRECISIONS["int8"].gate,
                      QuantOptions(transforms=no_transforms, rungs="int16,float"))
    # the ladder's first rung suffices: conv2 moves to int16 activations and stays on the integer path
    assert result.figures["passed"] and result.figures["min_cosine"] >= 0.98
    assert [f["origin"] for f in result.int16_layers] == ["conv2"] and result.float_layers == []
    assert [t["passed"] for t in result.tried] == [False, True]
    assert result.costs["size_cost"] >= 1.0 and result.costs["latency_cost"] > 0
    # the default under the cpu policy (no int16 kernels in XNNPACK): conv2 goes straight to float
    fast = quantize(model, samples[:20], samples[20:], ref, PRECISIONS["int8"].gate,
                    QuantOptions(transforms=no_transforms))
    assert fast.figures["passed"] and fast.int16_layers == [] and [f["origin"] for f in fast.float_layers] == ["conv2"]
    off = quantize(model, samples[:20], samples[20:], ref, PRECISIONS["int8"].gate,
                       QuantOptions(mixed_precision=False, transforms=no_transforms))
    assert not off["passed"] if isinstance(off, dict) else not off.figures["passed"]


def test_cpu_policy_keeps_attention_and_layernorm_float_strict_quantizes_them():
    from edgepack.testing import fitted
    f = fitted.small_transformer()
    calib = f.calibration(64, split="train")
    holdout = [{f.input_name: x} for x in f.x_test[:120]]
    ref = [dict(zip(["logits"], run_model(f.model, s, ["logits"]))) for s in holdout]
    opts = dict(mixed_precision=False)
    cpu = quantize(f.model, calib, holdout, ref, PRECISIONS["int8"].gate, QuantOptions(policy="cpu", **opts))
    strict = quantize(f.model, calib, holdout, ref, PRECISIONS["int8"].gate, QuantOptions(policy="strict", **opts))
    cpu_float = set(cpu.model.stats["quantization"]["float_opcodes"])
    assert {"BATCH_MATMUL", "SOFTMAX", "RSQRT"} <= cpu_float
    assert strict.model.stats["quantization"]["float_opcodes"] == []
    hist = strict.model.stats["op_histogram"]
    # QUANTIZE: the input edge, and 6 layer norms' ADD of an epsilon below half the output's int8 step,
    # which is a requantization (quant/clamps.py: XNNPACK refuses the epsilon's tiny scale)
    assert hist["QUANTIZE"] == 7 and hist["DEQUANTIZE"] == 1 and hist["BATCH_MATMUL"] == 4
    for r in (cpu, strict):
        assert r.figures["passed"], r.figures
    top1 = lambda r: r.figures["outputs"]["logits"]["top1_agreement"]  # noqa: E731
    assert top1(cpu) >= 0.97 and cpu.figures["min_snr_db"] >= strict.figures["min_snr_db"] - 0.5


def test_concat_relu_runs_without_xnnpack(tmp_path):
    """A Relu after a Concat must not be fused into it: the builtin kernel (no delegate, e.g. an older
    tflite-runtime or the int8 calibration run) refuses a fused activation on CONCATENATION."""
    nodes = [h.make_node("Concat", ["x", "x"], ["c"], axis=1, name="cat"),
             h.make_node("Relu", ["c"], ["y"], name="relu")]
    model = _save(tmp_path / "c.onnx", nodes, [], [1, 3, 4, 4], "y", [1, 6, 4, 4])
    samples = _samples(12, (1, 3, 4, 4))
    low, ranges, tm = _quantize(model, samples[:8])
    for data in (low.float_bytes(), tm.data):
        calibrate.interpreter(data, preserve=False)          # builtin kernels only: must prepare
    fig = _figures(model, tm, samples[8:])
    assert fig["cosine"] >= 0.999 and fig["max_abs"] < 0.05


def test_entropy_clips_heavy_tails_like_the_kl_method_should():
    rng = np.random.default_rng(0)
    lap = rng.laplace(size=65536).astype(np.float32)
    lo, hi = calibrate.choose_ranges({"t": calibrate.Stats(float(lap.min()), float(lap.max()), lap)}, "entropy")["t"]
    assert 5 < hi < 0.85 * lap.max() and 0.85 * lap.min() < lo < -5          # tails clipped, body kept
    gauss = rng.standard_normal(65536).astype(np.float32)
    lo, hi = calibrate.choose_ranges({"t": calibrate.Stats(float(gauss.min()), float(gauss.max()), gauss)},
                                     "entropy")["t"]
    assert hi > 3.0 and lo < -3.0                                              # no over-clipping


def test_cpu_policy_finds_a_decomposed_layernorm(tmp_path):
    from edgepack.targets.tflite.quant.policy import policy_float_nodes
    rng = np.random.default_rng(2)
    nodes = [h.make_node("MatMul", ["x", "w"], ["a"], name="proj"),
             h.make_node("ReduceMean", ["a"], ["mu"], axes=[-1], name="mean"),
             h.make_node("Sub", ["a", "mu"], ["d"], name="center"),
             h.make_node("Mul", ["d", "d"], ["d2"], name="square"),
             h.make_node("ReduceMean", ["d2"], ["var"], axes=[-1], name="var"),
             h.make_node("Add", ["var", "eps"], ["ve"], name="add_eps"),
             h.make_node("Sqrt", ["ve"], ["sd"], name="sqrt"),
             h.make_node("Div", ["d", "sd"], ["n"], name="normalize"),
             h.make_node("Mul", ["n", "gamma"], ["y"], name="scale")]
    inits = [_arr("w", rng.standard_normal((8, 8))), _arr("eps", [1e-5]), _arr("gamma", np.ones(8))]
    g = h.make_graph(nodes, "ln", [h.make_tensor_value_info("x", TP.FLOAT, [1, 4, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 4, 8])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), tmp_path / "ln.onnx")
    model = load_model(tmp_path / "ln.onnx")
    # from the variance's squares to the division; centering and the mean stay int8 (ordinary ranges)
    assert set(policy_float_nodes(model, "cpu")) == {"square", "var", "add_eps", "sqrt", "normalize"}
    assert policy_float_nodes(model, "strict") == []


@pytest.mark.forked   # before the fix LiteRT aborted the whole process at prepare time
def test_huge_mask_values_stay_float_instead_of_aborting_litert(tmp_path):
    nodes = [h.make_node("Add", ["s", "mask"], ["m"], name="mask_add"),
             h.make_node("Softmax", ["m"], ["p"], axis=-1, name="softmax"),
             h.make_node("Mul", ["p", "s"], ["y"], name="mix")]
    g = h.make_graph(nodes, "attn", [h.make_tensor_value_info("s", TP.FLOAT, [1, 4, 6]),
                                     h.make_tensor_value_info("mask", TP.FLOAT, [4, 6])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 4, 6])])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), tmp_path / "a.onnx")
    model = load_model(tmp_path / "a.onnx")
    rng = np.random.default_rng(0)
    mask = np.triu(np.full((4, 6), -1e9, np.float32), 1)
    samples = [{"s": rng.standard_normal((1, 4, 6)).astype(np.float32), "mask": mask} for _ in range(12)]
    low, ranges, _ = prepare(model, samples[:8], "minmax")
    tm = low.finish("int8", ranges=ranges)                      # strict: no policy float nodes
    assert {"ADD", "SOFTMAX"} <= set(tm.stats["quantization"]["float_opcodes"])
    got = run_tflite(tm.data, tm.io, samples[8:], ["y"])
    ref = [dict(zip(["y"], run_model(model, s, ["y"]))) for s in samples[8:]]
    fig = compare_output([x["y"] for x in got], [r["y"] for r in ref])
    assert fig["cosine"] >= 0.99, fig


def _outlier_mlp(path, kind):
    """x [1, 16, 32] -> MatMul + bias -> t -> MatMul -> y, where per-tensor int8 for ``t`` fails:
    ``row``: token 0 of t is 300x the others (a per-token scale, undone after the second MatMul), so a row's
    own range (the dynamically quantized kernel rounds each row at run time) suits every row; ``channel``:
    channel 0 of t is 1000x the others (undone by the second MatMul's weights), which every row carries."""
    rng = np.random.default_rng(3)
    w1, b1 = rng.standard_normal((32, 48)) * 0.3, rng.standard_normal(48) * 0.1
    w2 = rng.standard_normal((48, 8)) * 0.3
    if kind == "channel":
        w1[:, 0] *= 1000.0
        b1[0] *= 1000.0
        w2[0] /= 1000.0
    scale = np.ones((1, 16, 1))
    scale[0, 0, 0] = 300.0 if kind == "row" else 1.0
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"], name="fc1"), h.make_node("Add", ["m1", "b1"], ["a1"], name="bias1"),
             h.make_node("Mul", ["a1", "s"], ["t"], name="rowscale"), h.make_node("MatMul", ["t", "w2"], ["m2"], name="fc2"),
             h.make_node("Mul", ["m2", "inv"], ["y"], name="unscale")]
    inits = [_arr("w1", w1), _arr("b1", b1), _arr("s", scale), _arr("w2", w2), _arr("inv", 1.0 / scale)]
    return _save(path, nodes, inits, [1, 16, 32], "y", [1, 16, 8])


@pytest.mark.parametrize("kind", ["row", "channel"])
def test_float_layers_get_lighter_when_the_gate_still_passes(tmp_path, kind):
    """After the float rung passes the gate, its layers get lighter if the gate allows: first the
    FULLY_CONNECTED ops next to them run XNNPACK's dynamically quantized kernel (int8 weights, float in and
    out, each input row rounded at run time) with the remaining float constants in fp16; failing that, fp16
    constants alone. With a token outlier the rows' own ranges suffice and the dynamic model ships; with a
    channel outlier every row is dominated by it, the dynamic attempt fails and the float layer ships with
    fp16 weights (w1, 1,536 values)."""
    model = _outlier_mlp(tmp_path / "m.onnx", kind)
    samples = _samples(36, shape=(1, 16, 32))
    ref = [dict(zip(["y"], run_model(model, s, ["y"]))) for s in samples[24:]]
    no_transforms = {"norms": "off", "cle": "off", "smooth": "off", "sum_round": "off", "bias_correction": "off"}
    result = quantize(model, samples[:24], samples[24:], ref, PRECISIONS["int8"].gate,
                      QuantOptions(transforms=no_transforms, max_float_fraction=0.6))
    assert result.figures["passed"] and len(result.float_layers) == 2    # the float rung was needed
    after = [(t["rung"], t["passed"]) for t in result.tried if t.get("rung") in ("dynamic", "fp16")]
    assert after == ([("dynamic", True)] if kind == "row" else [("dynamic", False), ("fp16", True)])
    q = result.model.stats["quantization"]
    m = fb.ModelT.InitFromPackedBuf(result.model.data, 0)
    sub = m.subgraphs[0]
    fcs = [op for op in sub.operators if m.operatorCodes[op.opcodeIndex].builtinCode == fb.BuiltinOperator.FULLY_CONNECTED]
    hybrid = [op for op in fcs if sub.tensors[op.inputs[0]].type == fb.TensorType.FLOAT32
              and sub.tensors[op.inputs[1]].type == fb.TensorType.INT8]
    if kind == "row":
        assert q["dynamic_ops"] == len(hybrid) >= 1
        assert all(sub.tensors[op.outputs[0]].type == fb.TensorType.FLOAT32 for op in hybrid)
        assert all(op.builtinOptions.asymmetricQuantizeInputs for op in hybrid)
        assert describe(result, QuantOptions())["dynamic_ops"] == q["dynamic_ops"]
    else:
        assert q.get("dynamic_ops", 0) == 0 and hybrid == []
        halves = [t for t in sub.tensors if t.type == fb.TensorType.FLOAT16]
        assert q["fp16_constants"] == len(halves) == 1 and list(halves[0].shape) == [48, 32]
        assert describe(result, QuantOptions())["fp16_constants"] == 1
    figures = _figures(model, result.model, samples[24:])
    assert figures["cosine"] >= 0.99, figures


def test_debugger_does_not_count_what_a_clamp_cuts_off_as_error(tmp_path):
    """An SE gate: Conv -> HardSigmoid. The lowering writes it as a convolution (with 0.2 x + 0.5 folded in)
    and MINIMUM(x, 1).
    The int8 pass requantizes the convolution's output to the clamp's [0, 1] (the MINIMUM became that
    QUANTIZE). Judged against the unclipped float twin (up to ~6 here) the requantization read 3.2 dB, the
    model's worst layer; judged within the clamp it is as good as its step allows, as the output says."""
    from edgepack.targets.tflite.quant.layers import clamped_to
    rng = np.random.default_rng(4)
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], name="se_conv"),
             h.make_node("HardSigmoid", ["c"], ["y"], alpha=0.2, beta=0.5, name="gate")]
    inits = [_arr("w", rng.standard_normal((8, 8, 1, 1)) * 4.0), _arr("b", rng.standard_normal(8))]
    model = _save(tmp_path / "se.onnx", nodes, inits, [1, 8, 4, 4], "y", [1, 8, 4, 4])
    samples = _samples(12, shape=(1, 8, 4, 4))
    low, ranges, tm = _quantize(model, samples[:8])
    kept = clamped_to(low.graph)
    (name, bounds), = [(n, b) for n, b in kept.items() if b == (-np.inf, 1.0)]
    assert name.startswith("y_add") and ranges[name][1] > 3.0         # its float values reach past the clamp
    rows = debug_layers(low.graph, low.float_bytes(), tm.graph, tm.data, low.io, samples[8:])
    mine = [r for r in rows if r["tensor"] == name]                  # the convolution, and the QUANTIZE to [0, 1]
    assert len(mine) == 2 and min(r["snr_db"] for r in mine) > 30     # the QUANTIZE read 3.2 dB with saturation
    assert _figures(model, tm, samples[8:])["snr_db"] > 30            # and the model's output agrees
