"""Mixed precision for the qualcomm target (``targets/qualcomm/mixed.py``), measured on the HTP simulator.

The model has one deliberately sensitive layer: conv1's output channel 0 is 500x (or 10^6x) the others and
nothing downstream reads it (conv2's weights for it are 0), so at 8 bits per tensor its range leaves the
other 15 channels about half a step: everything after it is noise. 16-bit activations on conv1 (and the Relu
the quantizer folds into it) fix the 500x model; the 10^6x one needs conv1's output kept float (which the QNN EP
runs on HTP at fp16).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from edgepack_runtime.precisions import gate
from onnx import helper as h

from edgepack.calibration import CalibrationSet
from edgepack.model.ort import reference_outputs
from edgepack.targets.base import Job, QuantOptions
from edgepack.targets.qualcomm import htp
from edgepack.targets.qualcomm.debug import final_figures
from edgepack.targets.qualcomm.mixed import Layers, device_options, search, when_needed
from edgepack.targets.qualcomm.quantize import quantize

from .kit import model, needs_htp


def outlier_net(spike: float = 500.0) -> onnx.ModelProto:
    """conv1 (one output channel ``spike`` x the rest) -> relu -> conv2 (ignores that channel) -> relu ->
    conv3 -> relu -> conv4, on 1x8x16x16."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, np.sqrt(2 / 72), (16, 8, 3, 3)).astype(np.float32)
    w1[0] *= spike
    w2 = rng.normal(0, np.sqrt(2 / 15), (16, 16, 1, 1)).astype(np.float32)
    w2[:, 0] = 0
    w3 = (rng.normal(0, np.sqrt(2 / 144), (16, 16, 3, 3))).astype(np.float32)
    w4 = rng.normal(0, np.sqrt(2 / 16), (4, 16, 1, 1)).astype(np.float32)
    nodes = [h.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["a"], ["ar"], name="relu1"),
             h.make_node("Conv", ["ar", "w2"], ["b"], name="conv2"),
             h.make_node("Relu", ["b"], ["br"], name="relu2"),
             h.make_node("Conv", ["br", "w3"], ["c"], name="conv3", pads=[1, 1, 1, 1]),
             h.make_node("Relu", ["c"], ["cr"], name="relu3"),
             h.make_node("Conv", ["cr", "w4"], ["y"], name="conv4")]
    return model(nodes, {"w1": w1, "w2": w2, "w3": w3, "w4": w4}, [("x", [1, 8, 16, 16])], ["y"])


def job_for(m: onnx.ModelProto, precision: str, **quant) -> Job:
    rng = np.random.default_rng(1)
    data = [{"x": rng.standard_normal((1, 8, 16, 16)).astype(np.float32)} for _ in range(16)]
    cal = CalibrationSet(data[:10], data[10:], "given", None, [], None, 0.375, 0)
    return Job(precision, cal, reference_outputs(m, cal.holdout), gate(precision), QuantOptions(**quant))


@needs_htp
def test_the_outlier_layer_alone_moves_to_16_bit_and_the_gate_passes():
    m = outlier_net()
    job = job_for(m, "w8a8")
    plain = quantize(m, job.calibration.calib)
    device = device_options(job)
    assert device == {"htp_arch": "75", "soc_model": "57"}            # no profile: Snapdragon 8 Gen 3
    before = final_figures(htp.run(plain, job.calibration.holdout, provider_options=device), job.reference, ["y"],
                           job.gate)
    assert not before["passed"] and before["min_snr_db"] < 3.0           # w8a8 alone: the output is noise
    qdq, summary = search(m, job, precision="w8a8", base=(plain, before))
    assert summary["passed"] and summary["figures"]["min_snr_db"] > 25.0 and not summary["htp_kernel_loss"]
    assert set(summary["a16"]) == {"conv1", "relu1"} and summary["float"] == []
    assert {(r["node"], r["override"]) for r in summary["layers"]} == {("conv1", "a16"), ("relu1", "a16")}
    q16 = {n.input[0] for n in qdq.graph.node if n.op_type == "QuantizeLinear"
           and {t.name: t.data_type for t in qdq.graph.initializer}[n.input[2]] == onnx.TensorProto.UINT16}
    assert "ar" in q16 and not q16 & {"br", "cr", "y", "y_QuantizeLinear_Input"}    # only conv1's output
    cost = summary["cost"]
    assert cost["nodes_off_htp"] == 0 and cost["size"] > cost["plain_size"] and cost["size_ratio"] < 1.5
    got = final_figures(htp.run(qdq, job.calibration.holdout, provider_options=device), job.reference, ["y"],
                        job.gate)
    assert got["passed"] and got["min_cosine"] == pytest.approx(summary["figures"]["min_cosine"])
    assert all(t["passed"] is not None for t in summary["tried"])


@needs_htp
def test_when_16_bits_are_not_enough_the_layer_stays_float():
    m = outlier_net(spike=1e6)
    job = job_for(m, "w8a16")
    qdq, summary = search(m, job, precision="w8a16")
    assert summary["passed"] and summary["a16"] == []
    assert {"conv1", "relu1"} <= set(summary["float"]) <= {"conv1", "relu1", "conv2"}
    quantized = {n.input[0] for n in qdq.graph.node if n.op_type == "QuantizeLinear"}
    assert "ar" not in quantized and "a" not in quantized                # conv1's output is never rounded
    # HTP takes the float nodes too: the QNN EP runs float32 nodes at fp16 on HTP (enable_htp_fp16_precision is
    # on by default), so "float" costs precision-of-fp16 compute, not a CPU partition, on this simulator
    assert summary["cost"]["nodes_off_htp"] == 0 and summary["cost"]["plain_nodes_off_htp"] == 0


@needs_htp
def test_a_model_that_passes_comes_back_as_is_and_keep_float_is_honoured():
    m = outlier_net(spike=1.0)
    qdq, summary = search(m, job_for(m, "w8a8", keep_float=("conv4",)), precision="w8a8")
    assert summary["passed"] and summary["a16"] == [] and summary["float"] == ["conv4"]
    assert summary["tried"] == [] and summary["cost"]["nodes_off_htp"] == 0


def test_a_layer_names_the_nodes_its_override_needs():
    m = outlier_net()
    layers = Layers(m, quantize(m, [{"x": np.ones((1, 8, 16, 16), np.float32)}]))
    assert layers.chain("ar") == ["relu1", "conv1"]         # the quantizer folded relu1 into conv1
    assert layers.floats(["ar"]) == ["relu1", "conv1", "conv2"]
    assert layers.chain("y") == ["conv4"] and layers.chain("x") == []


@needs_htp
def test_convert_asks_for_the_search_only_when_the_gate_fails_and_mixed_precision_is_on():
    m = outlier_net()
    off = job_for(m, "w8a8", mixed_precision=False)
    plain = quantize(m, off.calibration.calib)
    assert when_needed(m, plain, off) == (plain, None)
    qdq, summary = when_needed(m, plain, job_for(m, "w8a8"))
    assert summary["passed"] and set(summary["a16"]) == {"conv1", "relu1"} and qdq is not plain
    fine = outlier_net(spike=1.0)
    q = quantize(fine, off.calibration.calib)
    assert when_needed(fine, q, job_for(fine, "w8a8")) == (q, None)


def test_a_non_finite_output_never_scores_above_a_finite_one():
    """The search keeps its best candidate by (passed, failures, SNR): an inf output (fp16 overflow on HTP) must
    not read as 100 dB."""
    from edgepack_runtime.compare import compare_runs, summarize

    from edgepack.targets.qualcomm.mixed import _score
    ref = [{"y": np.array([1.0, 2.0, 3.0], np.float32)}]
    bad = summarize(compare_runs([{"y": np.array([1.0, np.inf, 3.0], np.float32)}], ref, ["y"]), gate("w8a8"))
    poor = summarize(compare_runs([{"y": np.array([1.5, 1.0, 2.0], np.float32)}], ref, ["y"]), gate("w8a8"))
    assert bad["min_snr_db"] == -100.0 and _score(poor) > _score(bad)


@needs_htp
def test_a_candidate_htp_cannot_run_is_a_failed_candidate_not_the_end_of_the_search():
    """MiniLM's w8a8 search met a candidate QNN could not compose (a Quantize after a float node): the search
    must rank it below everything that ran and go on, not fail the build."""
    from edgepack import mixed as shared
    from edgepack.targets.qualcomm.mixed import _Runner, _score
    m = outlier_net()
    job = job_for(m, "w8a8")
    runner = _Runner(m, job, "uint8", "int8", set())
    good = runner.on_htp(runner.build({}))
    broken = quantize(m, job.calibration.calib)
    for node in broken.graph.node:          # a zero point of a type QuantizeLinear does not take: HTP refuses it
        if node.op_type == "QuantizeLinear":
            zp = next(t for t in broken.graph.initializer if t.name == node.input[2])
            zp.CopyFrom(onnx.numpy_helper.from_array(np.array(0, np.int32), zp.name))
            break
    bad = runner.on_htp(broken)
    assert not bad["passed"] and all("HTP could not run it" in w[0] for w in bad["failed"].values())
    assert _score(bad) < _score(good) and shared._score(bad) < shared._score(good)
    # the isolate search reads the figures per output: a refused candidate's noise is above any target
    from edgepack.mixed_isolate import noise, required
    assert noise(bad).shape == noise(good).shape == (1,)
    assert np.all(noise(bad) > required({**good, "thresholds": {"min_cosine": 0.98, "min_snr_db": 15.0}}))
