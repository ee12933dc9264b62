"""TFLite 16x8 (int16 activations, int8 weights) in LiteRT: the kernel probe, the precision, the mixed ladder."""
from __future__ import annotations

import numpy as np
import pytest

from edgepack.model.ort import run_model
from edgepack.targets.tflite.quant.int16 import INT16_OPS
from edgepack.targets.tflite.quant.int16_probe import RESOLVERS, conversions, probe_op
from edgepack.targets.tflite.quant.ladder import climb
from edgepack.targets.tflite.quant.measure import measure
from edgepack.targets.tflite.quant.pipeline import debug, prepare
from edgepack_runtime.precisions import PRECISIONS
from tests.tflite.test_int8 import _samples, mixed_net, outlier_cnn


@pytest.mark.parametrize("op,verdict", [("CONV_2D", "supported"), ("LOGISTIC", "supported"),
                                        ("SOFTMAX", "supported"), ("BATCH_MATMUL", "supported"),
                                        ("ELU", "refused"), ("HARD_SWISH", "refused"), ("PRELU", "wrong")])
def test_probe_verdicts_match_the_table(op, verdict):
    got = probe_op(op)
    for r in RESOLVERS:
        assert got[r]["verdict"] == verdict, (r, got[r])
    assert (op in INT16_OPS) == (verdict == "supported")
    if verdict == "supported":      # 16-bit activations: at most half int8's error, far under the threshold
        assert got["builtin"]["error"] <= 0.5 * got["int8_error"] and got["builtin"]["error"] < 5e-3


def test_quantize_converts_between_int8_and_int16_exactly():
    conv = conversions()
    assert set(conv) == {"float->int16", "int8->int16", "int16->int8", "int16->int16"}
    for name, per in conv.items():
        for r in RESOLVERS:
            assert per[r]["verdict"] == "supported", (name, r, per[r])
    assert conv["float->int16"]["builtin"]["error"] < 1e-5       # 3/32767 steps over a range of 6


def _gate_figures(model, tm, low, hold, gate=PRECISIONS["int8"].gate):
    ref = [dict(zip(["y"], run_model(model, s, ["y"]))) for s in hold]
    return measure(tm.data, low.io, model, hold, ref, gate)


def test_int16x8_is_closer_to_fp32_than_int8_on_a_fitted_transformer():
    from edgepack.testing import fitted
    f = fitted.small_transformer()
    calib = f.calibration(32, split="train")
    hold = [{f.input_name: x} for x in f.x_test[:60]]
    ref = [dict(zip(["logits"], run_model(f.model, s, ["logits"]))) for s in hold]
    low, ranges, _ = prepare(f.model, calib, "minmax")
    got = {}
    for p in ("int8", "int16x8"):
        tm = low.finish(p, ranges=ranges)
        got[p] = measure(tm.data, low.io, f.model, hold, ref, PRECISIONS[p].gate)
    assert got["int16x8"]["passed"], got["int16x8"]           # the tighter 16x8 gate too
    assert got["int16x8"]["min_snr_db"] >= got["int8"]["min_snr_db"] + 6, {p: g["min_snr_db"] for p, g in got.items()}
    top1 = {p: g["outputs"]["logits"]["top1_agreement"] for p, g in got.items()}
    assert top1["int16x8"] >= top1["int8"] and top1["int16x8"] >= 0.98, top1
    assert tm.stats["quantization"]["float_opcodes"] == ["SQUARED_DIFFERENCE"]    # refused in int16


def test_int16x8_graph_int64_biases_fixed_parameters_and_float_fallback(tmp_path):
    model = mixed_net(tmp_path / "m.onnx")
    samples = _samples(30, seed=4)
    low, ranges, _ = prepare(model, samples[:20], "minmax")
    i8, i16 = (low.finish(p, ranges=ranges) for p in ("int8", "int16x8"))
    f8, f16 = (_gate_figures(model, tm, low, samples[20:]) for tm in (i8, i16))
    assert f16["min_snr_db"] >= f8["min_snr_db"] + 5, (f8["min_snr_db"], f16["min_snr_db"])
    q = i16.stats["quantization"]
    assert q["float_ops"] == [] and q["int16_ops"] >= 9
    types = {t.dtype.name for t in i16.graph.tensors.values() if t.data is None}
    assert "int16" in types and "int8" not in types
    biases = [t for n, t in i16.graph.tensors.items() if n.endswith("_int64")]
    assert len(biases) == 3 and all(t.dtype == np.int64 for t in biases)
    logistic = next(op for op in i16.graph.ops if op.opcode == "LOGISTIC")
    assert [i16.graph.tensors[logistic.inputs[0]].quant.scale, i16.graph.tensors[logistic.outputs[0]].quant.scale] \
        == [[2.0 ** -12], [pytest.approx(1 / 32768)]]
    # an op without an int16 kernel runs float between DEQUANTIZE and QUANTIZE
    held = low.finish("int16x8", ranges=ranges, int16_ops=INT16_OPS - {"MAX_POOL_2D"})
    assert held.stats["quantization"]["float_opcodes"] == ["MAX_POOL_2D"]
    assert _gate_figures(model, held, low, samples[20:])["min_snr_db"] >= f16["min_snr_db"] - 1


def test_the_ladder_raises_the_culprit_to_int16_instead_of_float(tmp_path):
    model = outlier_cnn(tmp_path / "o.onnx")
    samples = _samples(30)
    hold, gate = samples[20:], PRECISIONS["int8"].gate
    ref = [dict(zip(["y"], run_model(model, s, ["y"]))) for s in hold]
    low, ranges, _ = prepare(model, samples[:20], "minmax")

    def make(keep, wide=()):
        return low.finish("int8", ranges=ranges, keep_float=keep, wide=wide)

    def evaluate(tm, n):
        return measure(tm.data, low.io, model, hold[:n], ref[:n], gate)

    base = make([])
    figures = evaluate(base, None)
    assert not figures["passed"] and figures["min_cosine"] < 0.9
    _, ranked = debug(low, base, hold)
    up = climb(make, evaluate, [], ranked, 0.25, base, figures)
    assert up.figures["passed"] and up.keep == [] and up.figures["min_snr_db"] > 15
    producer = {o: op for op in low.graph.ops for o in op.outputs}
    assert [producer[t].origin for t in up.wide] == ["conv2"]
    assert [(t["rung"], t["passed"]) for t in up.tried] == [("int16", True)]
    q = up.model.stats["quantization"]
    assert q["float_ops"] == [] and q["int16_ops"] == 2          # conv2 and its reader conv3
    assert up.model.stats["op_histogram"]["QUANTIZE"] == 3       # input, int8 -> int16, int16 -> int8


def test_an_embedding_table_stays_int8_in_int16x8(tmp_path):
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper as nh

    from edgepack.model import load_model
    rng = np.random.default_rng(2)
    g = h.make_graph([h.make_node("Gather", ["table", "ids"], ["e"], axis=0),
                      h.make_node("MatMul", ["e", "w"], ["y"])], "emb",
                     [h.make_tensor_value_info("ids", TP.INT64, [1, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 8, 4])],
                     [nh.from_array(rng.standard_normal((500, 16)).astype(np.float32), "table"),
                      nh.from_array(rng.standard_normal((16, 4)).astype(np.float32), "w")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), tmp_path / "e.onnx")
    model = load_model(tmp_path / "e.onnx")
    samples = [{"ids": rng.integers(0, 500, (1, 8))} for _ in range(12)]
    low, ranges, _ = prepare(model, samples[:8], "minmax")
    tm = low.finish("int16x8", ranges=ranges)
    gather = next(op for op in tm.graph.ops if op.opcode == "GATHER")
    assert tm.graph.tensors[gather.inputs[0]].dtype == np.int8          # 500x16 bytes, not 2x
    assert tm.graph.tensors[gather.outputs[0]].dtype == np.int8
    fc = next(op for op in tm.graph.ops if op.opcode in ("FULLY_CONNECTED", "BATCH_MATMUL"))
    assert tm.graph.tensors[fc.outputs[0]].dtype == np.int16             # the rest is 16x8
    ref = [dict(zip(["y"], run_model(model, s, ["y"]))) for s in samples[8:]]
    assert measure(tm.data, low.io, model, samples[8:], ref, PRECISIONS["int16x8"].gate)["passed"]


@pytest.mark.parametrize("precision", ["int8", "int16x8"])
def test_a_dead_channel_keeps_its_bias(precision):
    """A Conv output channel whose weights are all zero outputs its bias. Its weight scale was 1e-9: the bias
    scale (input scale x 1e-9) then pushed a 16x8 bias past int64, and the cast flipped its sign."""
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper as nh

    from edgepack.targets.tflite.quant.full_integer import saturate
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    w[2] = 0.0                                                   # channel 2: dead
    b = np.array([0.1, -0.2, 3.0, 0.05], np.float32)
    g = h.make_graph([h.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])], "dead",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 4, 8, 8])], [nh.from_array(w, "w"), nh.from_array(b, "b")])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    calib = [{"x": (rng.standard_normal((1, 3, 8, 8)) * 1e-3).astype(np.float32)} for _ in range(8)]
    low, ranges, _ = prepare(model, calib, "minmax")
    tm = low.finish(precision, ranges=ranges)
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=tm.data)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], np.transpose(calib[0]["x"], (0, 2, 3, 1)) if inp["shape"][-1] == 3 else calib[0]["x"])
    it.invoke()
    y = it.get_tensor(out["index"])
    dead = y[..., 2] if y.shape[-1] == 4 else y[:, 2]
    assert np.allclose(dead, 3.0, atol=0.05), (precision, dead.min(), dead.max())
    big = saturate(np.array([1e30, -1e30]), np.int64)
    assert big[0] > 0 > big[1]                                   # saturates, never wraps


@pytest.mark.parametrize("op", ["Add", "Sub"])
def test_int16_add_of_two_scales_loads_and_is_exact(op):
    """16x8 ADD/SUB are written with pot_scale_int16 false (the general int16 kernel; this small model loads either
    way, so the option itself is asserted). With the schema's default
    (true) LiteRT takes the power-of-two kernel whenever all three scales happen to be powers of two, and that
    kernel refuses inputs of different scales at prepare: magika's 16x8 model did not load (its node 48)."""
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper as nh

    g = h.make_graph([h.make_node("Mul", ["z", "k"], ["zk"]), h.make_node(op, ["x", "zk"], ["y"])], "two_scales",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, 16]), h.make_tensor_value_info("z", TP.FLOAT, [1, 16])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 16])], [nh.from_array(np.array(37.0, np.float32), "k")])
    model = onnx.shape_inference.infer_shapes(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]))
    rng = np.random.default_rng(0)
    calib = [{"x": rng.standard_normal((1, 16)).astype(np.float32),
              "z": rng.standard_normal((1, 16)).astype(np.float32)} for _ in range(8)]
    low, ranges, _ = prepare(model, calib, "minmax")
    tm = low.finish("int16x8", ranges=ranges)
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=tm.data)
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], calib[1][d["name"]])
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    want = run_model(model, calib[1], ["y"])[0]
    assert np.abs(got - want).max() <= 2e-3 * np.abs(want).max()
    from ai_edge_litert import schema_py_generated as fb
    m = fb.ModelT.InitFromPackedBuf(tm.data, 0)
    codes = [fb.BuiltinOperator.ADD if op == "Add" else fb.BuiltinOperator.SUB]
    ops = [o for o in m.subgraphs[0].operators
           if max(m.operatorCodes[o.opcodeIndex].builtinCode, m.operatorCodes[o.opcodeIndex].deprecatedBuiltinCode)
           in codes]
    assert len(ops) == 1 and ops[0].builtinOptions.potScaleInt16 is False
