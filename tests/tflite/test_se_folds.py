"""A MobileNetV3 block as PaddlePaddle exports it (PP-OCR's classifier, detector and recognizer): a bias Add
after a bias-less Conv, hard-swish written ``x * clip(x + 3, 0, 6) / 6``, and a squeeze-excite block computed
in NCHW [1, C, 1, 1] with HardSigmoid. The passes that fold it back into the convolutions
(``passes.sink_reshapes``, ``passes.relu01_as_min``, ``rewrites.sink_scalar_muls``)
are checked on the ops they leave and on the numbers, in the real LiteRT against onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.model import load_model
from edgepack.model.ort import run_model
from edgepack.targets.tflite import passes
from edgepack.targets.tflite.convert import lower
from edgepack.targets.tflite.ir import Graph
from edgepack.targets.tflite.quant import partitions, rewrites
from edgepack.targets.tflite.quant.measure import run_tflite
from edgepack.targets.tflite.quant.pipeline import prepare

C, SE, OUT = 16, 4, 8
SHAPE = (1, 8, 6, 20)


def _block(tmp_path):
    rng = np.random.default_rng(0)
    w = lambda *s: nh.from_array(rng.normal(0, 0.4, s).astype(np.float32), f"w{len(inits)}")  # noqa: E731
    inits, nodes = [], []

    def const(value, name):
        inits.append(nh.from_array(np.asarray(value, np.float32), name))
        return name

    def conv(src, cin, cout, k, out, group=1):
        inits.append(w(cout, cin // group, k, k))
        nodes.append(h.make_node("Conv", [src, inits[-1].name], [out], pads=[k // 2] * 4, group=group))
        return out

    def bias(src, ch, out, spread=0.2):   # Paddle: a bias-less Conv, then Add of a [1, C, 1, 1] vector
        b = const(rng.normal(0, spread, (1, ch, 1, 1)), f"{out}_b")
        nodes.append(h.make_node("Add", [src, b], [out]))
        return out

    def hard_swish(src, out):
        nodes.extend([h.make_node("Add", [src, const(3.0, f"{out}_3")], [f"{out}_a"]),
                      h.make_node("Clip", [f"{out}_a", const(0.0, f"{out}_lo"), const(6.0, f"{out}_hi")],
                                  [f"{out}_c"]),
                      h.make_node("Mul", [src, f"{out}_c"], [f"{out}_m"]),
                      h.make_node("Div", [f"{out}_m", const(6.0, f"{out}_6")], [out])])
        return out

    x = hard_swish(bias(conv("x", SHAPE[1], C, 3, "c1"), C, "b1"), "hs1")
    x = hard_swish(bias(conv(x, C, C, 5, "dw", group=C), C, "b2"), "hs2")
    nodes.append(h.make_node("GlobalAveragePool", [x], ["gap"]))
    s = bias(conv("gap", C, SE, 1, "se1"), SE, "se1b")
    nodes.append(h.make_node("Relu", [s], ["se_r"]))
    s = bias(conv("se_r", SE, C, 1, "se2"), C, "se2b", spread=4.0)   # gates that saturate at 0 and 1
    nodes.append(h.make_node("HardSigmoid", [s], ["se_hs"], alpha=0.2, beta=0.5))
    nodes.append(h.make_node("Mul", [x, "se_hs"], ["scaled"]))
    y = bias(conv("scaled", C, OUT, 1, "proj"), OUT, "y")
    g = h.make_graph(nodes, "mbv3_block", [h.make_tensor_value_info("x", TP.FLOAT, list(SHAPE))],
                     [h.make_tensor_value_info(y, TP.FLOAT, [1, OUT, SHAPE[2], SHAPE[3]])], inits)
    path = tmp_path / "mbv3_block.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return load_model(path)


def _samples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(0, 1, SHAPE).astype(np.float32)} for _ in range(n)]


def _snr_db(ref, got):
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    return 10 * np.log10(np.sum(ref ** 2) / max(np.sum((ref - got) ** 2), 1e-30))


def _opcodes(graph):
    return [op.opcode for op in graph.ops]


def test_the_block_lowers_to_its_convolutions_in_one_partition(tmp_path):
    model = _block(tmp_path)
    low = lower(model)
    ops = _opcodes(low.graph)
    # the SE block's NCHW view, its bias ADDs and its scale / offset are gone into the convolutions
    assert "RESHAPE" not in ops and "RELU_0_TO_1" not in ops, ops
    assert ops.count("CONV_2D") + ops.count("DEPTHWISE_CONV_2D") == 5
    assert ops.count("MINIMUM") == 1           # hard-sigmoid's upper clamp; its lower one is the conv's RELU
    assert ops.count("ADD") == 2               # hard-swish's + 3, twice: the five bias Adds were folded
    tm = low.finish("fp32")
    rep = partitions.report(tm.data, num_threads=1)
    assert rep["partitions"] == 1 and rep["delegated"] == len(tm.graph.ops)
    samples = _samples(3)
    for s, got in zip(samples, run_tflite(tm.data, tm.io, samples, ["y"])):
        want = run_model(model, s, ["y"])[0]
        assert got["y"].shape == want.shape == (1, OUT) + SHAPE[2:]
        np.testing.assert_allclose(got["y"], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_int8_keeps_one_quantize_and_no_scalar_muls_and_loses_nothing(tmp_path, monkeypatch):
    model = _block(tmp_path)
    calib, held = _samples(16), _samples(4, seed=9)
    low, ranges, _ = prepare(model, calib, "minmax")
    tm = low.finish("int8", ranges=ranges)
    ops = _opcodes(tm.graph)
    assert ops.count("QUANTIZE") == 1 and ops.count("DEQUANTIZE") == 1, ops      # the float input and output
    scalar_muls = [op for op in tm.graph.ops if op.opcode == "MUL"
                   and any(tm.graph.tensors[n].data is not None for n in op.inputs)]
    assert not scalar_muls, "hard-swish's / 6 should be in the next convolutions' weights"
    speed = tm.stats["quantization"]["speed"]
    # one / 6 feeds the depthwise convolution directly, the other reaches the projection through the SE's
    # MEAN and channel-scale MUL
    assert speed["scalar_muls"] == 1 and speed["sunk_muls"] == 1, speed
    rep = partitions.report(tm.data, num_threads=1)
    assert rep["partitions"] == 1

    # the same int8 build without the sink: one more full-size MUL, and no closer to float
    monkeypatch.setattr(rewrites, "sink_scalar_muls", lambda graph, ranges=None: 0)
    before = low.finish("int8", ranges=ranges)
    assert len(before.graph.ops) == len(tm.graph.ops) + 1
    ref = np.concatenate([run_model(model, s, ["y"])[0].ravel() for s in held])
    snr_new = _snr_db(ref, np.concatenate([o["y"].ravel() for o in run_tflite(tm.data, tm.io, held, ["y"])]))
    snr_old = _snr_db(ref, np.concatenate([o["y"].ravel() for o in run_tflite(before.data, before.io, held, ["y"])]))
    assert snr_new > 20.0, snr_new
    assert snr_new >= snr_old - 0.5, (snr_new, snr_old)


def _ir(shape=(1, 4, 4, 8)):
    g = Graph()
    g.inputs.append(g.add("x", shape, np.float32))
    return g


def _op(g, opcode, inputs, hint, shape=None, options=None):
    out = g.add(hint, shape or g.tensors[inputs[0]].shape, np.float32)
    g.op(opcode, inputs, [out], options)
    return out


def _conv(g, src, cout=8):
    from ai_edge_litert import schema_py_generated as fb
    o = fb.Conv2DOptionsT()
    o.padding, o.strideH, o.strideW = fb.Padding.SAME, 1, 1
    cin = g.tensors[src].shape[-1]
    w = g.const(np.ones((cout, 1, 1, cin), np.float32), "w")
    return _op(g, "CONV_2D", [src, w, g.const(np.zeros(cout, np.float32), "b")], "conv",
               g.tensors[src].shape[:3] + (cout,), o)


def test_a_scalar_reaching_a_convolution_twice_or_a_non_linear_op_stays():
    # two paths from c * x meet at one MUL: folding c into the convolution would count it once, not twice
    g = _ir()
    y = _op(g, "MUL", ["x", g.const(np.float32(0.5), "c")], "y")
    a = _op(g, "RESHAPE", [y, g.const(np.asarray([1, 4, 4, 8], np.int32), "s")], "a")
    b = _op(g, "PAD", [y, g.const(np.zeros((4, 2), np.int32), "p")], "b")
    g.outputs.append(_conv(g, _op(g, "MUL", [a, b], "ab")))
    assert rewrites.sink_scalar_muls(g) == 0
    # an ADD of another activation is not linear in the factor
    g = _ir()
    y = _op(g, "MUL", ["x", g.const(np.float32(0.5), "c")], "y")
    g.outputs.append(_conv(g, _op(g, "ADD", [y, "x"], "s")))
    assert rewrites.sink_scalar_muls(g) == 0
    # through a MEAN and a MUL with another activation into two convolutions: folded, ranges rescaled
    g = _ir()
    y = _op(g, "MUL", ["x", g.const(np.float32(0.25), "c")], "y")
    m = _op(g, "MEAN", [y, g.const(np.asarray([1, 2], np.int32), "ax")], "m", (1, 1, 1, 8))
    g.outputs.append(_conv(g, m))
    yx = _op(g, "MUL", [y, "x"], "yx")
    g.outputs.append(_conv(g, yx))
    ranges = {m: (-1.0, 2.0), yx: (0.0, 4.0)}
    assert rewrites.sink_scalar_muls(g, ranges) == 1
    assert ranges[m] == (-4.0, 8.0) and ranges[yx] == (0.0, 16.0)
    weights = [g.tensors[op.inputs[1]].data for op in g.ops if op.opcode == "CONV_2D"]
    assert all(np.allclose(wt, 0.25) for wt in weights) and len(weights) == 2
    assert not any(op.opcode == "MUL" and "c" in op.inputs for op in g.ops)


def test_a_reshape_that_moves_real_axes_is_not_sunk():
    g = _ir((1, 4, 2, 8))
    r = _op(g, "RESHAPE", ["x", g.const(np.asarray([1, 8, 8], np.int32), "s")], "r", (1, 8, 8))
    g.outputs.append(_op(g, "RELU", [r], "y"))
    assert passes.sink_reshapes(g) == 0
    # a unit-axis move is sunk, and the constant of the elementwise op is reshaped with it
    g = _ir((1, 1, 1, 8))
    r = _op(g, "RESHAPE", ["x", g.const(np.asarray([1, 8, 1, 1], np.int32), "s")], "r", (1, 8, 1, 1))
    a = _op(g, "ADD", [r, g.const(np.arange(8, dtype=np.float32).reshape(1, 8, 1, 1), "v")], "a")
    back = _op(g, "RESHAPE", [a, g.const(np.asarray([1, 1, 1, 8], np.int32), "s2")], "back", (1, 1, 1, 8))
    g.outputs.append(_conv(g, back))
    assert passes.sink_reshapes(g) >= 1
    assert _opcodes(g) == ["ADD", "CONV_2D"]
    add = g.ops[0]
    assert g.tensors[add.inputs[1]].shape == (1, 1, 1, 8)
