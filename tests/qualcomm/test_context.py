"""Context binaries (``context.py``) and the placement report (``placement.py``) on the HTP simulator."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from edgepack_runtime.backends import qnn_ep
from onnx import helper as h

from edgepack.errors import EdgepackError
from edgepack.targets.qualcomm import htp, placement
from edgepack.targets.qualcomm.context import compile_context
from edgepack.targets.qualcomm.quantize import quantize

from .kit import conv_net, erf_net, max_rel_error, needs_htp, reference, samples

LOG = """\
2026-12-02 [V:onnxruntime:, qnn_execution_provider.cc:1713 LogNodeSupport] Validation PASSED for 1 nodes in OrtNodeUnit (Relu) :
\tOperator type: Relu Node name: relu Node index: 1
2026-12-02 [V:onnxruntime:, qnn_execution_provider.cc:1713 LogNodeSupport] Validation FAILED for 3 nodes in OrtNodeUnit (Erf) :
\tOperator type: DequantizeLinear Node name: c1_DequantizeLinear Node index: 5
\tOperator type: Erf Node name: erf Node index: 6
\tREASON : Operators of type `Erf` are not supported by QNN EP.Erf node `erf` will not be assigned to QNN EP.
2026-12-02 [V:onnxruntime:, qnn_execution_provider.cc:1713 LogNodeSupport] Validation FAILED for 3 nodes in OrtNodeUnit (Erf) :
\tOperator type: Erf Node name: erf Node index: 9
\tREASON : a later pass says something else
[E:onnxruntime:, qnn_model_wrapper.cc:776 ComposeQnnGraph] QNN.graphAddNode() failed for node `log` of type `ElementWiseLog` with error code 6007
"""


def test_the_qnn_log_gives_each_refused_node_its_reason():
    reasons = placement.refusals(LOG)
    assert reasons == {"c1_DequantizeLinear": "Operators of type `Erf` are not supported by QNN EP.",
                       "erf": "Operators of type `Erf` are not supported by QNN EP."}
    assert placement.compose_errors(LOG) == ["node 'log' (ElementWiseLog): QNN error 6007"]


@needs_htp
def test_a_context_binary_for_v75_runs_like_the_qdq_model():
    m, feeds = conv_net(), samples([1, 3, 16, 16], n=3)
    qdq = quantize(m, feeds)
    compiled = compile_context(qdq.SerializeToString(), htp_arch="75", soc_model="57")
    info = compiled.info
    sdk = qnn_ep.versions()["qnn_sdk"]
    assert info["htp_arch"] == "75" and info["soc_model"] == "57" and info["sdk_version"].startswith(f"v{sdk}.")
    assert info["ort_qnn"] == qnn_ep.versions()["onnxruntime_qnn"] and info["size"] == len(compiled.data) > 1000
    ops = [n.op_type for n in compiled.model.graph.node]
    assert ops == ["QuantizeLinear", "EPContext", "DequantizeLinear"]      # one partition, boundary Q/DQ on CPU
    got_ctx = htp.run(compiled.data, feeds)
    got_qdq = htp.run(qdq, feeds, provider_options={"htp_arch": "75", "soc_model": "57"})
    for a, b in zip(got_ctx, got_qdq):
        np.testing.assert_array_equal(a[0], b[0])                           # the same HTP graph, precompiled
    assert max_rel_error(got_ctx, reference(m, feeds)) < 0.05
    rep = placement.report(qdq, compiled.model, compiled.log)
    assert rep == {"htp_nodes": 5, "cpu_nodes": 0, "fraction_on_htp": 1.0, "partitions": 1, "cpu": []}


@needs_htp
def test_an_op_htp_cannot_run_is_reported_with_the_qnn_reason():
    m, feeds = erf_net(), samples([1, 8, 8, 8])
    qdq = quantize(m, feeds)
    compiled = compile_context(qdq.SerializeToString())
    rep = placement.report(qdq, compiled.model, compiled.log)
    assert rep["cpu"] == [{"name": "erf", "op_type": "Erf",
                           "why": "Operators of type `Erf` are not supported by QNN EP."}]
    assert (rep["htp_nodes"], rep["cpu_nodes"], rep["partitions"], rep["fraction_on_htp"]) == (2, 1, 2, 0.6667)
    with pytest.raises(EdgepackError) as err:
        placement.require_npu(rep)
    assert "1 node(s) of target 'qualcomm' would run on CPU" in str(err.value)
    assert "Erf 'erf' (Operators of type `Erf` are not supported by QNN EP.)" in str(err.value)
    assert max_rel_error(htp.run(compiled.data, feeds), reference(m, feeds)) < 0.05


@needs_htp
def test_a_model_htp_takes_nothing_of_compiles_to_no_binary():
    m = onnx.shape_inference.infer_shapes(h.make_model(h.make_graph(
        [h.make_node("Acos", ["x"], ["y"], name="acos")], "t",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 16])]), opset_imports=[h.make_opsetid("", 17)]))
    qdq = quantize(m, samples([1, 16], low=-0.9, high=0.9))
    compiled = compile_context(qdq.SerializeToString())
    assert compiled.data is None and compiled.model is None and compiled.info["sdk_version"] is None
    rep = placement.report(qdq, None, compiled.log)
    assert rep["htp_nodes"] == 0 and rep["cpu"] == [{"name": "acos", "op_type": "Acos",
                                                     "why": "Operators of type `Acos` are not supported by QNN EP."}]


def test_the_estimate_without_onnxruntime_qnn_reads_the_measured_op_table():
    m, feeds = erf_net(), samples([1, 8, 8, 8])
    est = placement.estimate(quantize(m, feeds))
    assert est["estimated"] is True and est["partitions"] is None
    assert [r["op_type"] for r in est["cpu"]] == ["Erf"] and est["htp_nodes"] == 2
