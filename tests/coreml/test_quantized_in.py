"""Quantized ONNX in, coreml target: a QDQ or QOperator model (onnxruntime's quantize_static) becomes its float
twin in MIL; fp16 runs it without the activations' rounding (judged against onnxruntime running the quantized
model itself), and w8 keeps the model's own int8 weight grid. Verified by the MIL reference executor."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgepack.build import build
from edgepack.errors import UnsupportedOpsError
from edgepack.model import load_model
from edgepack.model.qdq import dequantize
from edgepack.targets.coreml.target import TARGET
from tests.tflite.qdq_models import hand_qdq, quantized

pytestmark = pytest.mark.forked
F = TensorProto.FLOAT


def wide_mlp() -> onnx.ModelProto:
    """MatMul [64 -> 96] + bias -> Relu -> MatMul [96 -> 48]: weights above coremltools' 2,048-element threshold."""
    rng = np.random.default_rng(4)
    w = lambda name, shape, s: numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)  # noqa: E731
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r1"]), helper.make_node("MatMul", ["r1", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "wide_mlp", [helper.make_tensor_value_info("x", F, [1, 8, 64])],
                              [helper.make_tensor_value_info("y", F, [1, 8, 48])],
                              [w("w1", [64, 96], 0.2), w("b1", [96], 0.1), w("w2", [96, 48], 0.2)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _samples(n=8, seed=5):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 8, 64)).astype(np.float32)} for _ in range(n)]


@pytest.mark.parametrize("fmt,precision", [("QDQ", "fp16"), ("QOperator", "fp16"), ("QDQ", "w8")])
def test_quantized_model_builds_for_coreml(tmp_path, fmt, precision):
    path = quantized(wide_mlp(), tmp_path, fmt=fmt)
    res = build(path, targets=["coreml"], precision=precision, samples=_samples(), out=tmp_path / "b.edgepack")
    t = res.manifest["targets"][0]
    assert t["name"] == "coreml" and t["precision"] == precision
    assert t["info"]["dequantized"]["left"] == 0
    assert t["info"]["dequantized"]["constants_dequantized"] >= 2
    hist = t["info"]["mil_ops"]
    assert "linear" in hist or "matmul" in hist
    assert not any(k in hist for k in ("quantize", "dequantize"))      # the float twin: no rounding ops left
    p = t["parity"]
    assert p["passed"] and p["backend"] == "coreml-reference"
    # the reference is onnxruntime running the quantized model: the activations' rounding is the gap, no more
    assert 0 < p["max_rel_error"] < 0.05 and p["min_cosine"] > 0.999
    # fp16 and w8 gates are tighter than int8's: against the quantized model, no tighter than int8's
    assert any("judged against onnxruntime running the quantized model" in w for w in res.warnings)
    assert p["thresholds"]["min_cosine"] == 0.98 and p["thresholds"]["max_rel_error"] == 0.5
    if precision == "w8":
        q = t["compression"]["quantized_in"]
        assert q == {"int8_weights_in_model": 2, "small_left_fp16": 0, "int8_weights_in_program": 2,
                     "model_grid_kept": 2}


def test_w8_grids_are_the_models_own(tmp_path):
    """The integers coremltools stores are the model's (transposed as MIL lays MatMul weights), value for value."""
    from edgepack.targets.coreml import compress
    from edgepack.targets.coreml.convert import discard, lower, package
    model = load_model(quantized(wide_mlp(), tmp_path))
    flt, info = dequantize(model)
    ml = package(lower(flt, "iOS16"), precision="fp16", deployment="iOS16", metadata={})
    mq = compress.compress(ml, "w8")
    ops = [op for op in mq._mil_program.functions["main"].operations if op.op_type.startswith("constexpr_")]
    grids = sorted((compress._grid_of(op) for op in ops), key=lambda g: g.size)
    want = sorted((w.grid for w in info.weights.values() if w.grid.ndim == 2), key=lambda g: g.size)
    assert len(grids) == len(want) == 2
    for got, w in zip(grids, want):         # as stored (matmul) or transposed (linear's [out, in])
        assert np.array_equal(got, w if got.shape == w.shape else w.T)
    discard(ml, mq)


def test_quantized_graph_input_is_named_with_what_to_do(tmp_path):
    onnx.save(hand_qdq("input"), str(tmp_path / "input.onnx"))
    with pytest.raises(UnsupportedOpsError) as err:
        TARGET.preflight(load_model(tmp_path / "input.onnx"))       # the loader names unnamed nodes
    assert err.value.target == "coreml"
    nodes = [p["node"] for p in err.value.problems]
    assert len(nodes) == 1 and err.value.problems[0]["op_type"] == "DequantizeLinear"
    assert "re-export with a float input" in err.value.problems[0]["reason"]
