"""ONNX backend node tests (onnx 1.22.0) for every op the TFLite target claims, end to end:
``edgepack build`` -> bundle -> ``edgepack_runtime.Runtime`` -> compare with the test's expected outputs.

Outcomes: passed; skipped with "refused at preflight/intake: <reason>" when the build rejects the model up
front with a clear error (types or attributes TFLite cannot express); skipped with the reason in
``tests/tflite/node_exclusions.py`` when excluded by hand; anything else (a wrong number, a crash, an
error at run time) fails.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgepack.build import build
from edgepack.errors import ModelError, UnsupportedOpsError
from edgepack.targets.tflite import TFLITE
from edgepack.testing.node_tests import list_node_tests
from edgepack_runtime import Runtime

from ..tflite.node_exclusions import EXCLUDED

CLAIMED = {e.op_type for e in TFLITE.entries() if e.domain == ""}

# Node-input slots that deployed models carry as initializers (weights, shape-like arguments). The node tests
# feed them as graph inputs; the runner freezes them into initializers, as an exporter would.
CONSTANT_SLOTS = {
    "Conv": {1, 2}, "ConvTranspose": {1, 2}, "BatchNormalization": {1, 2, 3, 4},
    "InstanceNormalization": {1, 2}, "LayerNormalization": {1, 2}, "Gemm": {2},
    "Reshape": {1}, "Expand": {1}, "Tile": {1}, "Slice": {1, 2, 3, 4}, "Pad": {1, 2, 3},
    "Resize": {1, 2, 3}, "Upsample": {1}, "TopK": {1}, "Clip": {1, 2}, "Unsqueeze": {1}, "Squeeze": {1},
    "Split": {1}, "ReduceMean": {1}, "ReduceSum": {1}, "ReduceMax": {1}, "ReduceMin": {1},
    "ReduceProd": {1}, "ReduceL1": {1}, "ReduceL2": {1}, "ReduceSumSquare": {1}, "ReduceLogSum": {1},
    "ReduceLogSumExp": {1}, "ConstantOfShape": {0}, "Range": {0, 1, 2}, "CumSum": {1}, "OneHot": {1, 2},
}


def freeze_constant_slots(model: onnx.ModelProto, inputs: dict) -> tuple[onnx.ModelProto, dict]:
    """Turn graph inputs that feed CONSTANT_SLOTS into initializers; return the model and remaining feeds."""
    frozen = {n.input[i] for n in model.graph.node for i in CONSTANT_SLOTS.get(n.op_type, ())
              if i < len(n.input) and n.input[i] in inputs}
    if not frozen:
        return model, inputs
    graph = model.graph
    keep = [v for v in graph.input if v.name not in frozen]
    del graph.input[:]
    graph.input.extend(keep)
    graph.initializer.extend(numpy_helper.from_array(inputs[n], n) for n in sorted(frozen))
    return model, {k: v for k, v in inputs.items() if k not in frozen}


class Unavailable(str):
    """Stands in for the cases when the node tests cannot be fetched: each test using it fails."""


def _cases():
    try:
        tests = list_node_tests(CLAIMED)
    except Exception as exc:  # no network and no cache: a failure, never a run that passes on zero cases
        return [pytest.param(Unavailable(str(exc)), id="node-tests-unavailable")]
    out = []
    for t in tests:
        marks = []
        if t.skip_reason:
            continue  # sequences/optionals: not tensors, not a TFLite concept
        if t.name in EXCLUDED:
            marks.append(pytest.mark.skip(reason=EXCLUDED[t.name]))
        out.append(pytest.param(t, id=t.name, marks=marks))
    return out


CASES = _cases()   # listed once: with no cache and no index, one fetch attempt, not one per test function


def _close(got: np.ndarray, want: np.ndarray, name: str) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5, err_msg=name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


def _require(case) -> None:
    if isinstance(case, Unavailable):
        pytest.fail(f"no ONNX node tests to run: {case}", pytrace=False)


@pytest.mark.forked  # a kernel abort fails one test, not the run
@pytest.mark.parametrize("case", CASES)
def test_node(case, tmp_path):
    _require(case)
    inputs, expected = case.load_data()
    model, inputs = freeze_constant_slots(onnx.load(case.model), inputs)
    onnx.save(model, tmp_path / "model.onnx")
    try:
        result = build(tmp_path / "model.onnx", targets=["cpu"], samples=[inputs], out=tmp_path / "b.edgepack",
                       allow_mismatch=True)
    except UnsupportedOpsError as exc:  # refused up front with a reason: counted apart from passes
        pytest.skip("refused at preflight: " + "; ".join(p["reason"] for p in exc.problems))
    except ModelError as exc:
        if "opset" in str(exc):
            pytest.skip(f"refused at intake: {exc.message}")
        if "onnxruntime cannot run" in str(exc):   # no fp32 reference to verify against
            pytest.skip(f"no onnxruntime kernel for the reference: {exc.message[:120]}")
        raise
    with Runtime.open(result.path) as rt:
        assert rt.backend_name == "litert"
        got = rt.run(inputs)
    for name, want in expected.items():
        _close(got[name], want, name)


@pytest.mark.forked
@pytest.mark.parametrize("case", CASES)
def test_node_int8(case, tmp_path):
    """Every node test with a float input also goes through full-integer int8 (strict policy: everything
    with an int8 kernel is quantized, calibrated on the test's own input): the bundle must build, load and
    run in LiteRT with the right shapes and dtypes. Numbers are int8's business (the gate is off here);
    what this guards is the converter's int8 graph never being one LiteRT refuses or aborts on."""
    from edgepack.targets.base import QuantOptions
    _require(case)
    inputs, expected = case.load_data()
    model, inputs = freeze_constant_slots(onnx.load(case.model), inputs)
    if not any(np.asarray(v).dtype == np.float32 for v in inputs.values()):
        pytest.skip("no float input to quantize")
    onnx.save(model, tmp_path / "model.onnx")
    try:
        result = build(tmp_path / "model.onnx", targets=["cpu"], samples=[inputs, inputs], precision="int8",
                       out=tmp_path / "b.edgepack", allow_mismatch=True,
                       quant=QuantOptions(mixed_precision=False, policy="strict"))
    except (UnsupportedOpsError, ModelError) as exc:
        pytest.skip(f"refused: {str(exc)[:100]}")
    with Runtime.open(result.path) as rt:
        got = rt.run(inputs)
    for name, want in expected.items():
        assert got[name].shape == want.shape and got[name].dtype == want.dtype, name
