"""int8 on XNNPACK's integer path: the partitions report and the speed rewrites, in the real LiteRT."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.model import load_model
from edgepack.model.ort import run_model
from edgepack.targets.tflite.quant import partitions, speed
from edgepack.targets.tflite.quant.measure import run_tflite
from edgepack.targets.tflite.quant.pipeline import prepare
from edgepack_runtime.compare import compare_output


@pytest.fixture
def unblocked(monkeypatch):
    """Thin convolutions as they are (their blocked form, ``passes.block_thin_convs``, has its own tests in
    test_blocked_conv.py): these tests count the ops and channels of the plain graph."""
    from edgepack.targets.tflite import passes
    monkeypatch.setattr(passes, "_block_size", lambda *a, **k: None)


def _c(name, value):
    return nh.from_array(np.asarray(value, np.float32), name)


def _model(tmp_path, nodes, inits, cin=3, cout=8, hw=16, out_channels=None, name="m", out_hw=None):
    rng = np.random.default_rng(0)
    pre = [h.make_node("Conv", ["x", "w0", "b0"], ["a"], pads=[1, 1, 1, 1], name="conv0")]
    ws = [_c("w0", rng.normal(0, 0.4, (cout, cin, 3, 3))), _c("b0", rng.normal(0, 0.1, cout))]
    g = h.make_graph(pre + nodes, name, [h.make_tensor_value_info("x", TP.FLOAT, [1, cin, hw, hw])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, out_channels or cout, out_hw or hw, out_hw or hw])], ws + inits)
    path = tmp_path / f"{name}.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return load_model(path)


def slow_net(tmp_path):
    """What left XNNPACK's integer path before the speed rewrites: a standalone RELU, a concatenation of
    inputs with different ranges, a hard-sigmoid (RELU_0_TO_1), a hard-swish spelled with DIV, a clamp by
    MAXIMUM with a constant, an average pool and a channel shuffle."""
    nodes = [h.make_node("Relu", ["a"], ["r"], name="relu"),                       # a has two readers
             h.make_node("Mul", ["a", "k"], ["m"], name="scale"),
             h.make_node("Concat", ["r", "m"], ["cat"], axis=1, name="cat"),
             h.make_node("HardSigmoid", ["cat"], ["hs"], alpha=0.2, beta=0.5, name="hsig"),
             h.make_node("Mul", ["cat", "hs"], ["g"], name="gate"),
             h.make_node("Add", ["g", "three"], ["p3"], name="plus3"),
             h.make_node("Clip", ["p3", "zero", "six"], ["r6"], name="clip6"),
             h.make_node("Mul", ["g", "r6"], ["hm"], name="hswish_mul"),
             h.make_node("Div", ["hm", "six"], ["hsw"], name="hswish_div"),
             h.make_node("Max", ["hsw", "floor"], ["mx"], name="floor"),
             h.make_node("AveragePool", ["mx"], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="avg"),
             h.make_node("Reshape", ["ap", "s1"], ["sh1"], name="sh1"),
             h.make_node("Transpose", ["sh1"], ["sh2"], perm=[0, 2, 1, 3, 4], name="sh2"),
             h.make_node("Reshape", ["sh2", "s2"], ["y"], name="sh3")]
    inits = [_c("k", 1.5), _c("three", 3.0), _c("zero", 0.0), _c("six", 6.0), _c("floor", -0.2),
             nh.from_array(np.array([1, 2, 8, 16, 16], np.int64), "s1"),
             nh.from_array(np.array([1, 16, 16, 16], np.int64), "s2")]
    return _model(tmp_path, nodes, inits, out_channels=16)


def _samples(n, shape=(1, 3, 16, 16), seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(0, 1, shape).astype(np.float32)} for _ in range(n)]


def _builds(model, samples):
    low, ranges, _ = prepare(model, samples, "minmax")
    with speed.disabled():
        before = low.finish("int8", ranges=ranges)
    return low, before, low.finish("int8", ranges=ranges)


def _figures(model, tm, samples):
    got = run_tflite(tm.data, tm.io, samples, ["y"])
    ref = [run_model(model, s, ["y"])[0] for s in samples]
    return compare_output([g["y"] for g in got], ref)


def test_report_counts_what_leaves_the_integer_path_and_the_rewrites_remove_it(tmp_path, unblocked):
    model = slow_net(tmp_path)
    samples = _samples(20)
    low, before, after = _builds(model, samples[:12])
    rep = partitions.report(before.data)
    assert rep == {"ops": 20, "requantize": 0, "quantize": 3, "dequantize": 3,
                   "float_ops": {"RELU_0_TO_1": 1, "DIV": 1}, "partitions": 4, "delegated": 15,
                   "not_delegated": {"RELU (int8)": 1, "RELU_0_TO_1 (float32)": 1, "MAXIMUM (int8)": 1,
                                     "AVERAGE_POOL_2D (int8)": 1, "GATHER (int8)": 1}}
    rep = partitions.report(after.data)
    assert rep == {"ops": 20, "requantize": 3, "quantize": 2, "dequantize": 2,
                   "float_ops": {"AVERAGE_POOL_2D": 1}, "partitions": 1, "delegated": 20, "not_delegated": {}}
    # requantizations: the RELU (two steps: its output takes the concatenation's parameters) and the
    # hard-sigmoid's clamp; the MAXIMUM's constant sat at -128, so it is gone
    assert after.stats["quantization"]["speed"] == {
        "div_as_mul": 1, "scalar_muls": 0, "sunk_muls": 0, "leaky_max": 0, "even_splits": 0,
        "shuffles": 1, "deconvs": 0, "avg_pools": 0,
        "max_pool_pads": 0, "blocked_convs": 0, "blocked_weights_added": 0,
        "shared_join_inputs": 1, "float_clamps": 1,
        "int8_clamps": 2, "small_constants": 0, "float_islands": 1}
    assert after.stats["quantization"]["float_opcodes"] == [] and after.stats["quantization"]["dequantize_ops"] == 2
    fp32 = partitions.report(low.finish("fp32").data)
    assert fp32["partitions"] == 2 and fp32["not_delegated"] == {"RELU_0_TO_1 (float32)": 1, "GATHER (float32)": 1}
    for tm in (before, after):
        fig = _figures(model, tm, samples[12:])
        assert fig["cosine"] >= 0.995 and fig["rel_error"] <= 0.1, fig
    assert "1 XNNPACK partition(s), 20/20 ops delegated" in partitions.summary(rep)


def concat_net(tmp_path, k):
    """conv -> a; concat(a, a * k): ``a`` also feeds the output, so it is not the concat's alone."""
    nodes = [h.make_node("Mul", ["a", "k"], ["m"]), h.make_node("Concat", ["a", "m"], ["cat"], axis=1),
             h.make_node("Conv", ["cat", "wc"], ["c"]), h.make_node("Add", ["c", "a"], ["y"])]
    wc = np.random.default_rng(2).normal(0, 0.3, (8, 16, 1, 1))
    return _model(tmp_path, nodes, [_c("k", k), _c("wc", wc)], name=f"cat{k}")


@pytest.mark.parametrize("k,shared", [(1.5, 1), (-4.0, 0)])
def test_shared_concat_parameters_remove_the_requantization_when_ranges_are_close(tmp_path, k, shared):
    model = concat_net(tmp_path, k)
    samples = _samples(20, seed=1)
    _, before, after = _builds(model, samples[:12])
    assert partitions.report(before.data)["requantize"] == 1
    assert partitions.report(after.data)["requantize"] == 1 - shared      # -4x: four times wider, kept apart
    assert after.stats["quantization"]["speed"]["shared_join_inputs"] == 1 + shared
    for tm in (before, after):
        fig = _figures(model, tm, samples[12:])
        assert fig["cosine"] >= 0.995 and fig["rel_error"] <= 0.05, fig


REWRITE = {"relu": "int8_clamps", "relu6": "int8_clamps", "hardsigmoid": "float_clamps", "leaky_max": "leaky_max",
           "hardsigmoid_conv": "int8_clamps",
           "min_clamp": "int8_clamps", "tiny_bias": "small_constants", "hardswish": "float_islands",
           "div": "div_as_mul", "deconv": "deconvs", "avgpool_valid": "avg_pools", "avgpool_global": "avg_pools",
           "maxpool_pad": "max_pool_pads", "scale_into_conv": ("scalar_muls", 2), "split_halves": "even_splits",
}
ONE_OPS = {
    "relu": ([h.make_node("Relu", ["a"], ["r"]), h.make_node("Add", ["r", "a"], ["y"])], []),
    "relu6": ([h.make_node("Clip", ["a", "zero", "six"], ["r"]), h.make_node("Add", ["r", "a"], ["y"])],
              [_c("zero", 0.0), _c("six", 6.0)]),
    # not after a convolution: RELU_0_TO_1 in float between DEQUANTIZE and QUANTIZE, then a requantization
    "hardsigmoid": ([h.make_node("Add", ["a", "a"], ["a2"]),
                     h.make_node("HardSigmoid", ["a2"], ["y"], alpha=0.15, beta=0.4)], []),
    # after one: the convolution's fused RELU and MINIMUM(x, 1) (passes.relu01_as_min), then int8 saturation
    "hardsigmoid_conv": ([h.make_node("HardSigmoid", ["a"], ["y"], alpha=0.3, beta=0.4)], []),
    "leaky_max": ([h.make_node("Mul", ["a", "al"], ["m"]), h.make_node("Max", ["m", "a"], ["y"])], [_c("al", 0.2)]),
    "min_clamp": ([h.make_node("Min", ["a", "c"], ["y"])], [_c("c", 0.5)]),
    "tiny_bias": ([h.make_node("Mul", ["a", "a"], ["sq"]), h.make_node("Add", ["sq", "c"], ["y"])],
                  [_c("c", 1e-6)]),
    "hardswish": ([h.make_node("HardSwish", ["a"], ["y"])], []),
    "div": ([h.make_node("Div", ["a", "c"], ["y"])], [_c("c", 3.0)]),
    "deconv": ([h.make_node("ConvTranspose", ["a", "wt", "bt"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
               [_c("wt", np.random.default_rng(5).normal(0, 0.3, (8, 8, 2, 2))), _c("bt", np.linspace(-1, 1, 8))]),
    "avgpool_valid": ([h.make_node("AveragePool", ["a"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                   pads=[1, 1, 0, 0], count_include_pad=1)], []),
    "avgpool_global": ([h.make_node("AveragePool", ["a"], ["y"], kernel_shape=[16, 16])], []),
    "split_halves": ([h.make_node("Split", ["a", "halves"], ["p", "q"], axis=1),
                      h.make_node("Concat", ["q", "p"], ["y"], axis=1)],
                     [nh.from_array(np.array([4, 4], np.int64), "halves")]),
    "scale_into_conv": ([h.make_node("Add", ["a", "a"], ["sq"]), h.make_node("Mul", ["sq", "half"], ["m"]),
                         h.make_node("Div", ["m", "three"], ["d"]),
                         h.make_node("Conv", ["d", "wq"], ["y"], pads=[1, 1, 1, 1])],
                        [_c("half", 0.5), _c("three", 3.0), _c("wq", np.random.default_rng(6).normal(0, 0.3, (8, 8, 3, 3)))]),
    "maxpool_pad": ([h.make_node("Relu", ["a"], ["r"]),
                     h.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], []),
}
SIZE = {"deconv": 32, "avgpool_valid": 8, "avgpool_global": 1, "maxpool_pad": 8}   # output side when it changes


@pytest.mark.parametrize("case", sorted(ONE_OPS))
def test_each_rewrite_keeps_the_numbers(tmp_path, case):
    """int8 with the rewrites against onnxruntime's fp32, and against int8 without them (a step or two apart)."""
    model = _model(tmp_path, *ONE_OPS[case], name=case, out_hw=SIZE.get(case))
    samples = _samples(16, seed=3)
    _, before, after = _builds(model, samples[:10])
    key, n = REWRITE[case] if isinstance(REWRITE[case], tuple) else (REWRITE[case], 1)
    assert after.stats["quantization"]["speed"][key] == n
    rep, rep0 = partitions.report(after.data), partitions.report(before.data)
    assert rep["partitions"] == 1 and rep["not_delegated"] == {}, rep
    if case != "deconv":            # the int8 deconvolution was delegated, only slow (bench_int8_speed.py)
        assert rep0["partitions"] > 1 or rep0["float_ops"], rep0       # without the rewrite it left the path
    fig = _figures(model, after, samples[10:])
    assert fig["cosine"] >= 0.99 and fig["rel_error"] <= 0.1, fig      # the int8 gate
    a = run_tflite(after.data, after.io, samples[10:], ["y"])
    b = run_tflite(before.data, before.io, samples[10:], ["y"])
    out = after.graph.tensors[after.graph.producers()[after.graph.outputs[0]].inputs[0]].quant.scale[0]
    for x, z in zip(a, b):
        assert np.max(np.abs(x["y"] - z["y"])) <= 2.01 * out


def test_the_manifest_record_carries_the_integer_path(tmp_path):
    from edgepack.targets.base import QuantOptions
    from edgepack.targets.tflite.quant.pipeline import describe, quantize
    from edgepack_runtime.precisions import PRECISIONS
    model = _model(tmp_path, *ONE_OPS["hardsigmoid"], name="rec")
    samples = _samples(16, seed=4)
    ref = [dict(zip(["y"], run_model(model, s, ["y"]))) for s in samples[10:]]
    opts = QuantOptions(mixed_precision=False)
    result = quantize(model, samples[:10], samples[10:], ref, PRECISIONS["int8"].gate, opts)
    ip = describe(result, opts)["integer_path"]
    assert ip["partitions"] == 1 and ip["not_delegated"] == {} and ip["ops"] == ip["delegated"]
    assert ip["rewrites"]["float_clamps"] == 1 and ip["float_ops"] == {}


def test_the_build_report_shows_the_integer_path():
    from edgepack.report.sections import target_section
    ip = {"ops": 20, "requantize": 3, "quantize": 2, "dequantize": 2, "float_ops": {}, "partitions": 2,
          "delegated": 19, "not_delegated": {"RESIZE_NEAREST_NEIGHBOR (int8)": 1}, "rewrites": {}}
    t = {"name": "cpu", "format": "tflite", "precision": "int8", "file": "model.tflite", "info": {}, "parity": {},
         "quantization": {"method": "minmax", "io": "float", "integer_path": ip, "layers": []}}
    html = target_section(0, t)
    assert ("2 XNNPACK partition(s), 19/20 ops delegated, 3 requantize, 2 dequantize; outside XNNPACK: "
            "RESIZE_NEAREST_NEIGHBOR (int8) ×1") in html



def test_the_layer_debugger_compares_tensors_a_factor_was_sunk_through_in_the_models_own_units(tmp_path):
    """A scalar MUL sunk through a squeeze-excite MEAN into the next convolution leaves the MEAN's output at
    1 / c times the source model's value (exact: the convolution absorbs c). The layer debugger compares it
    with its float twin in the source's units: compared raw, the MEAN read -14 dB in PP-OCR cls (c = 1/6) and
    ranked as a culprit the mixed-precision search then kept float."""
    from edgepack.targets.tflite.quant.layers import debug_layers
    nodes = [h.make_node("Mul", ["a", "a"], ["sq"], name="square"),        # nothing to fold the factor back into
             h.make_node("Mul", ["sq", "sixth"], ["m"], name="scale"),
             h.make_node("GlobalAveragePool", ["m"], ["gp"], name="pool"),
             h.make_node("Conv", ["gp", "w1"], ["y"], name="fc")]
    inits = [_c("sixth", 1 / 6), _c("w1", np.random.default_rng(2).normal(0, 0.3, (8, 8, 1, 1)))]
    model = _model(tmp_path, nodes, inits, out_hw=1, name="se")
    samples = _samples(16, seed=1)
    low, _, after = _builds(model, samples[:10])
    assert after.stats["quantization"]["speed"]["sunk_muls"] == 1
    pooled = [t for t in after.graph.tensors.values() if t.scale != 1.0]
    assert pooled and all(t.scale == pytest.approx(6.0) for t in pooled)
    rows = {r["tensor"]: r for r in debug_layers(low.graph, low.float_bytes(), after.graph, after.data, low.io,
                                                samples[10:])}
    mean = next(r for r in rows.values() if r["op"] == "MEAN")
    assert mean["snr_db"] > 30 and mean["quant_snr_db"] > 30 and mean["cosine"] > 0.999, mean
    fig = _figures(model, after, samples[10:])
    assert fig["cosine"] > 0.999                   # and the model itself is right
