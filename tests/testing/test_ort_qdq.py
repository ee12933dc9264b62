"""benchmarks/ort_qdq.py: the onnxruntime static QDQ int8 baseline."""
from __future__ import annotations


import numpy as np
import onnx
import pytest

from edgepack.testing import fitted

from .kit import load_benchmark

@pytest.fixture(scope="module")
def qdq():
    return load_benchmark("ort_qdq")


@pytest.fixture(scope="module")
def cnn():
    return fitted.small_cnn(0)


def test_small_cnn_qdq_agrees_with_fp32(qdq, cnn, tmp_path):
    out = qdq.ort_quantize_static(cnn.model, cnn.calibration(100, split="train"), tmp_path / "cnn.qdq.onnx")
    assert out == tmp_path / "cnn.qdq.onnx" and out.is_file()
    m = onnx.load(str(out))
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {t.name: t for t in m.graph.initializer}
    # weights are int8, per channel (a scale vector per conv weight)
    int8_weights = [t for t in inits.values() if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert int8_weights
    dq_scales = [inits[n.input[1]] for n in m.graph.node
                 if n.op_type == "DequantizeLinear" and n.input[0] in {t.name for t in int8_weights}]
    assert dq_scales and all(len(s.dims) == 1 and s.dims[0] > 1 for s in dq_scales)

    samples = [{"x": x} for x in cnn.x_test[:200]]
    got = qdq.run_ort(out, samples)
    ref = qdq.run_ort(cnn.model, samples)
    assert set(got[0]) == {"logits"} and got[0]["logits"].shape == (1, 10)
    a = qdq.agreement(got, ref)
    assert a["n"] == 200
    assert a["top1"] >= 0.9
    assert a["cosine_min"] > 0.9 and a["snr_db"] > 15
    acc = cnn.accuracy([g["logits"] for g in got], cnn.y_test[:200])
    assert acc >= 0.9


def test_agreement_measures(qdq):
    rng = np.random.default_rng(0)
    ref = [{"y": rng.normal(size=(1, 8)).astype(np.float32)} for _ in range(20)]
    same = qdq.agreement(ref, ref)
    assert same["top1"] == 1.0 and same["cosine_min"] == pytest.approx(1.0) and same["snr_db"] == float("inf")
    noisy = [{"y": r["y"] + np.float32(0.1) * rng.normal(size=(1, 8)).astype(np.float32)} for r in ref]
    a = qdq.agreement(noisy, ref)
    assert 15 < a["snr_db"] < 25 and 0.9 < a["cosine_min"] < 1.0 and a["cosine_min"] <= a["cosine_mean"]
    flipped = [{"y": -r["y"]} for r in ref]
    b = qdq.agreement(flipped, ref)
    assert b["top1"] == 0.0 and b["cosine_min"] == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        qdq.agreement(ref[:3], ref)


def test_method_by_name(qdq, cnn, tmp_path):
    calib = cnn.calibration(16, split="train")
    with pytest.raises(ValueError, match="unknown calibration method"):
        qdq.ort_quantize_static(cnn.model, calib, tmp_path / "a.onnx", method="bogus")
    out = qdq.ort_quantize_static(cnn.model, calib, tmp_path / "p.onnx", method="Percentile")
    got = qdq.run_ort(out, [{"x": cnn.x_test[0]}])
    assert got[0]["logits"].shape == (1, 10) and np.isfinite(got[0]["logits"]).all()


# --- the like-for-like comparison (benchmarks/bench_int8_ort.py) ------------------------------------------

def _tiny_cnn():
    """conv1 -> relu1 -> conv2 -> conv3 -> pool -> flatten -> fc, every node named."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)

    def w(name, *shape):
        return numpy_helper.from_array((rng.normal(size=shape) * 0.3).astype(np.float32), name)

    conv = dict(pads=[1, 1, 1, 1])
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", **conv),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", **conv),
             helper.make_node("Conv", ["c2", "w3", "b3"], ["c3"], name="conv3", **conv),
             helper.make_node("GlobalAveragePool", ["c3"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1)]
    inits = [w("w1", 4, 1, 3, 3), w("b1", 4), w("w2", 6, 4, 3, 3), w("b2", 6), w("w3", 8, 6, 3, 3), w("b3", 8),
             w("wf", 5, 8), w("bf", 5)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    model = onnx.shape_inference.infer_shapes(model)        # static shapes, as edgepack's intake leaves them
    samples = [{"x": rng.normal(size=(1, 1, 8, 8)).astype(np.float32)} for _ in range(40)]
    return model, samples[:24], samples[24:]


@pytest.fixture(scope="module")
def tiny():
    return _tiny_cnn()


@pytest.mark.parametrize("excluded", [[], ["conv2"], ["conv2", "conv3"], ["conv3"]])
def test_ort_leaves_exactly_the_excluded_nodes_float(qdq, tiny, tmp_path, excluded):
    model, calib, _ = tiny
    rep = qdq.ort_quantize(model, calib, tmp_path / "t.onnx", nodes_to_exclude=excluded)
    assert rep["excluded"] == excluded and rep["unmatched"] == []
    assert rep["settings"]["nodes_to_exclude"] == excluded and rep["settings"]["per_channel"] is True
    assert rep["calibration_samples"] == len(calib)
    assert sorted(qdq.float_nodes(rep["path"])) == sorted(excluded)
    m = onnx.load(str(rep["path"]))
    float_inits = {t.name for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    float_weights = {n.name for n in m.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
                     for i in n.input if i in float_inits}
    assert float_weights == set(excluded)          # every other weight goes through DequantizeLinear


def test_map_nodes_follows_fusions(qdq):
    from onnx import helper
    orig = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["mm"], name="q_matmul"),
                              helper.make_node("Add", ["mm", "b"], ["y"], name="q_add"),
                              helper.make_node("Relu", ["y"], ["z"], name="relu")], "g", [], [])
    pre = helper.make_graph([helper.make_node("Gemm", ["a", "w", "b"], ["y"], name="q_matmul/MatMulAddFusion"),
                             helper.make_node("Relu", ["y"], ["z"], name="relu")], "g", [], [])
    got, missing = qdq.map_nodes(helper.make_model(orig), helper.make_model(pre),
                                 ["relu", "q_matmul", "q_add", "gone"])
    assert got == ["relu", "q_matmul/MatMulAddFusion"] and missing == ["gone"]


def test_library_defaults_are_quantize_statics_own(qdq):
    import inspect
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    d = {k: p.default for k, p in inspect.signature(quantize_static).parameters.items()}
    assert d["quant_format"] == QuantFormat.QDQ and d["per_channel"] is qdq.LIBRARY_DEFAULTS["per_channel"]
    assert d["activation_type"] == QuantType.QInt8 and qdq.LIBRARY_DEFAULTS["activation_type"] == "int8"
    assert d["weight_type"] == QuantType.QInt8 and qdq.LIBRARY_DEFAULTS["weight_type"] == "int8"
    assert d["calibrate_method"] == CalibrationMethod.MinMax and qdq.LIBRARY_DEFAULTS["method"] == "minmax"


def test_like_for_like_same_samples_same_float_nodes_same_comparison(tiny, monkeypatch):
    bench = load_benchmark("bench_int8_ort")
    model, calib, holdout = tiny
    seen = {"edgepack": [], "ort": [], "compare": []}
    real_ep, real_ort, real_cmp = bench.edgepack_int8, bench.ort_int8, bench.compare_output

    def ep(model_, calib_, holdout_, reference, options):
        seen["edgepack"].append((calib_, holdout_, reference, options))
        return real_ep(model_, calib_, holdout_, reference, options)

    def ort_(model_, calib_, path, **kw):
        seen["ort"].append((calib_, kw))
        return real_ort(model_, calib_, path, **kw)

    def cmp(got, ref):
        out = real_cmp(got, ref)
        seen["compare"].append((ref, out))
        return out

    monkeypatch.setattr(bench, "edgepack_int8", ep)
    monkeypatch.setattr(bench, "ort_int8", ort_)
    monkeypatch.setattr(bench, "compare_output", cmp)
    rows = bench.compare("tiny", model, calib, holdout, runs=("B",), methods=("minmax",), latency=False,
                         extra_float=["conv2"], report=lambda s: None)
    ours, theirs = rows
    assert (ours["quantizer"], theirs["quantizer"]) == ("edgepack", "onnxruntime")
    # the same calibration samples (the very same list) and the same nodes kept float on both sides
    run_b = [o for o in seen["edgepack"] if not o[3].mixed_precision]
    assert len(run_b) == 1 and len(seen["ort"]) == 1
    (ep_calib, ep_holdout, _, opts), (ort_calib, kw) = run_b[0], seen["ort"][0]
    assert ep_calib is calib and ort_calib is calib and ep_holdout is holdout
    assert theirs["calibration_samples"] == len(calib)
    assert opts.method == "minmax" and kw["method"] == "minmax" and kw["per_channel"] is True
    assert opts.keep_float == ("conv2",) and kw["nodes_to_exclude"] == ["conv2"]
    assert ours["float_nodes"] == theirs["float_nodes"] == ["conv2"]
    assert theirs["ort_float_nodes"] == ["conv2"]               # onnxruntime left exactly that node float
    # figures from the one comparison function, against the one fp32 reference
    assert len(seen["compare"]) == 2
    (ref_a, fig_a), (ref_b, fig_b) = seen["compare"]
    assert all(a is b for a, b in zip(ref_a, ref_b))
    assert ours["cosine_min"] == fig_a["cosine"] and theirs["cosine_min"] == fig_b["cosine"]
    assert ours["compared_by"] == theirs["compared_by"] == "edgepack_runtime.compare.compare_output"
    assert ours["format"] == ".tflite" and theirs["format"] == ".onnx QDQ"
    assert ours["fp32_bytes"] != theirs["fp32_bytes"]           # each against its own format's fp32 file


def test_consumers_of_float_nodes(tiny):
    bench = load_benchmark("bench_int8_ort")
    model = tiny[0]
    assert bench.consumers(model, ["conv2"]) == ["conv3"]
    assert bench.consumers(model, ["conv2", "conv3"]) == ["pool"]
    assert bench.consumers(model, ["conv1"]) == ["relu1", "conv2"]     # through the activation it fuses
