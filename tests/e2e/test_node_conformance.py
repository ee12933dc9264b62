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

from ..tflite.node_exclusions import EXCLUDED, INT8_NUMERIC_EXCLUDED

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


# --- int8 numerics -------------------------------------------------------------------------------------
# Error of an int8 output: max |int8 - float| over its finite values, divided by the float output's max |value|
# (one int8 step of an output spanning [-m, m] is m/127.5, 0.0078 of m). "float" is the node test's expected
# output (the fp32 path matches it to 1e-3 in test_node). Integer and boolean outputs must match exactly; NaN
# and infinity must sit where the float output has them. Each bound is about 2x the worst error measured over
# its class's cases (775 cases, onnx 1.22.0 node tests, ai-edge-litert 2.x), so a 10x regression of the worst
# case of a class fails; the measured worst case is in the comment. Cases excluded from this check, with the
# measured error and the reason, are in tests/tflite/node_exclusions.py (INT8_NUMERIC_EXCLUDED).
INT8_REL_TOL = {
    "movement": 0.025,      # copies, selections, resampling of the quantized input; worst 0.0118 (Gather)
    "elementwise": 0.03,    # arithmetic, activations, comparisons; worst 0.0136 (Mish)
    "linear": 0.02,         # Conv, ConvTranspose, Gemm, MatMul; worst 0.0093 (MatMul broadcast)
    "reduction": 0.01,      # Reduce*, Softmax, Sum/Mean; worst 0.0048 (ReduceLogSum)
    "pool_norm": 0.1,       # average/Lp pooling, normalizations; worst 0.045 (AveragePool with pads)
    "composite": 0.1,       # more than one computing op (function expansions); worst 0.051 (LayerNorm expanded)
}
_INT8_CLASSES = {
    "movement": "Cast CastLike Concat Constant ConstantOfShape DepthToSpace Dropout Expand Flatten Gather "
                "GatherElements GatherND GlobalMaxPool Identity Max MaxPool Min Pad Range ReduceMax ReduceMin "
                "Reshape Resize Shape Size Slice SpaceToDepth Split Squeeze Tile TopK Transpose Unsqueeze "
                "Upsample Where",
    "elementwise": "Abs Add And ArgMax ArgMin Ceil Celu Clip Cos Div Elu Equal Erf Exp Floor Gelu Greater "
                   "GreaterOrEqual Hardmax HardSigmoid HardSwish IsInf IsNaN LeakyRelu Less LessOrEqual Log "
                   "Mish Mod Mul Neg Not Or PRelu Pow Reciprocal Relu Round Selu Sigmoid Sign Sin Softplus "
                   "Softsign Sqrt Sub Tanh ThresholdedRelu Xor",
    "linear": "Conv ConvTranspose Gemm MatMul",
    "reduction": "LogSoftmax Mean ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMean ReduceProd ReduceSum "
                 "ReduceSumSquare Softmax Sum",
    "pool_norm": "AveragePool BatchNormalization GlobalAveragePool GlobalLpPool InstanceNormalization LRN "
                 "LayerNormalization LpPool",
}
INT8_OP_CLASS = {op: cls for cls, ops in _INT8_CLASSES.items() for op in ops.split()}


def int8_class(op_types) -> str:
    """The class whose bound a case is held to: the class of its one computing op (ops outside "movement"),
    "composite" when it has more than one, "movement" when it has none."""
    unknown = sorted(set(op_types) - set(INT8_OP_CLASS))
    assert not unknown, f"ops {unknown} have no int8 error class: add them to _INT8_CLASSES"
    computing = {INT8_OP_CLASS[op] for op in op_types if INT8_OP_CLASS[op] != "movement"}
    if len({op for op in op_types if INT8_OP_CLASS[op] != "movement"}) > 1:
        return "composite"
    return computing.pop() if computing else "movement"


def int8_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want| over the finite values of ``want`` (see above); inf if NaN/inf differ."""
    g, w = got.astype(np.float64), want.astype(np.float64)
    if any(not np.array_equal(test(g), test(w)) for test in (np.isnan, np.isposinf, np.isneginf)):
        return float("inf")
    finite = np.isfinite(w)
    if not finite.any():
        return 0.0
    scale = max(float(np.abs(w[finite]).max()), float(np.finfo(np.float32).tiny))
    return float(np.abs(g[finite] - w[finite]).max()) / scale


def _close_int8(got: np.ndarray, want: np.ndarray, name: str, cls: str) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind not in "fc":
        np.testing.assert_array_equal(got, want, err_msg=f"{name}: int8 build, {want.dtype} output")
        return
    err = int8_error(got, want)
    assert err <= INT8_REL_TOL[cls], (f"{name}: int8 error {err:.4g} of the output's range > {INT8_REL_TOL[cls]} "
                                      f"({cls} bound)")


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
    run in LiteRT with the right shapes and dtypes (the converter's int8 graph is never one LiteRT refuses or
    aborts on), and its outputs must lie within the op class's bound of the float outputs (INT8_REL_TOL;
    the build's own gate is off here), unless the case is in INT8_NUMERIC_EXCLUDED."""
    from edgepack.targets.base import QuantOptions
    from edgepack.transforms import parse as parse_transforms
    _require(case)
    inputs, expected = case.load_data()
    model, inputs = freeze_constant_slots(onnx.load(case.model), inputs)
    if not any(np.asarray(v).dtype == np.float32 for v in inputs.values()):
        pytest.skip("no float input to quantize")
    onnx.save(model, tmp_path / "model.onnx")
    try:
        result = build(tmp_path / "model.onnx", targets=["cpu"], samples=[inputs, inputs], precision="int8",
                       out=tmp_path / "b.edgepack", allow_mismatch=True,
                       quant=QuantOptions(mixed_precision=False, policy="strict",
                                          transforms=parse_transforms(["all=off"])))   # one op: nothing to transform
    except (UnsupportedOpsError, ModelError) as exc:
        pytest.skip(f"refused: {str(exc)[:100]}")
    with Runtime.open(result.path) as rt:
        got = rt.run(inputs)
    cls = int8_class(case.op_types)
    for name, want in expected.items():
        if case.name in INT8_NUMERIC_EXCLUDED:
            assert got[name].shape == want.shape and got[name].dtype == want.dtype, name
        else:
            _close_int8(got[name], want, name, cls)
