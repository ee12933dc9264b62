"""Property tests: the untrusted ``qnn`` block of a manifest never crashes the reader, ``inspect``'s summary, the
backend's plan or ``Runtime.open``; a bad block means no context binary, with a reason, and the QDQ model runs."""
import numpy as np
from qnn_kit import needs_qnn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qnn_kit as k
from edgepack_runtime.backends import BACKENDS
from edgepack_runtime.backends.qnn_manifest import read_context, summary
from edgepack_runtime.bundle import Bundle
from edgepack_runtime.runtime import Runtime

CTX, JUNK = "models/qualcomm/model.ctx.onnx", "models/qualcomm/junk.onnx"
FILES = {CTX: {}, JUNK: {}, "models/qualcomm/model.qdq.onnx": {}}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12)


def maybe(values):
    """Either a plausible value of a field or any JSON value."""
    return st.sampled_from(values) | json_values


contexts = st.fixed_dictionaries({}, optional={
    "file": maybe([CTX, JUNK, "models/none.onnx", "../model.ctx.onnx", "/abs.onnx", "", "a//b", "a\\b"]),
    "htp_arch": maybe(["75", "v75", 75, "73", "V68", "7", "7500", " 75 ", True, 7.5, None]),
    "soc_model": maybe(["57", 57, "x", None, False]),
    "sdk_version": maybe(["v2.51.0.260929181845", "2.51.0", "v2.50.0.1", "2.51", "v2.51.0-rc1", "", None, 2.51]),
    "ort_qnn": maybe(["2.7.0", None, 3])})
placements = st.fixed_dictionaries({}, optional={
    "htp_nodes": maybe([5, -1, "5", None]), "cpu_nodes": maybe([2, 0, True]),
    "fraction_on_htp": maybe([0.714, 1.0, float("nan"), float("inf"), "71%", None]),
    "partitions": maybe([1, None, "1"]),
    "cpu": st.lists(st.fixed_dictionaries({}, optional={"name": json_values, "op_type": json_values,
                                                        "why": json_values}) | json_values, max_size=25)
           | json_values})
blocks = st.fixed_dictionaries({}, optional={
    "context": contexts | json_values, "context_reason": json_values, "placement": placements | json_values,
    "activations": maybe(["uint8", "uint16"]), "weights": json_values, "per_channel": json_values,
    "versions": json_values}) | json_values


@settings(max_examples=400, deadline=None)
@given(block=blocks, files=st.sampled_from([FILES, {}, None]))
def test_reader_and_summary_never_crash(block, files):
    ctx, why = read_context({"qnn": block}, files)
    if ctx is None:
        assert isinstance(why, str) and why
    else:
        assert why is None and ctx.file in (files if files is not None else {ctx.file: 1})
        assert ctx.htp_arch.isdigit() and all(isinstance(n, int) for n in ctx.sdk)
    lines = summary({"qnn": block}, files)
    assert lines and all(isinstance(line, str) and "\n" not in line[:0] for line in lines)


@needs_qnn
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(block=blocks)
def test_runtime_opens_whatever_the_block_says(block, qdq8, ctx75):
    manifest, files = k.manifest_and_files(qdq8, block, ctx=ctx75, samples=0,
                                           extra_files={JUNK: b"\x08\x07garbage" * 16})
    bundle = Bundle.from_files(manifest, files)
    entry = bundle.manifest["targets"][0]
    planned, why = BACKENDS["qnn"].plan(entry, bundle)
    assert planned in ("qnn-context", "qnn-qdq") and (planned == "qnn-context") == (why is None)
    with Runtime.open(bundle, backend="qnn") as rt:
        assert rt.backend_name == "qnn" and rt.backend_detail in ("qnn-context", "qnn-qdq")
        assert (rt.backend_detail == "qnn-context") == (rt.backend_reason is None)
        y = rt.run({"x": k.inputs(1)[0]})["y"]
    assert y.shape == tuple(k.SHAPE_OUT) and np.isfinite(y).all() and y.max() > 0
