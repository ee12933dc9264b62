"""Thin convolutions computed on blocks of their width (``passes.block_thin_convs``), 1-channel PADs padded
as 3-D (``passes.narrow_pads``) and constant buffers stored once (``writer``), in the real LiteRT."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.model import load_model
from edgepack.model.ort import run_model
from edgepack.targets.tflite import passes
from edgepack.targets.tflite.ir import Graph
from edgepack.targets.tflite.quant import speed
from edgepack.targets.tflite.quant.measure import run_tflite
from edgepack.targets.tflite.quant.pipeline import prepare
from edgepack.targets.tflite.writer import serialize
from ai_edge_litert import schema_py_generated as fb


def _conv_model(tmp_path, cin, cout, kernel, strides, shape, auto_pad="NOTSET", pads=None, name="m", pre_pad=None):
    rng = np.random.default_rng(0)
    nodes, inits, src = [], [], "x"
    if pre_pad is not None:        # a PAD of its own in front of the convolution (merged into the block PAD)
        nodes.append(h.make_node("Pad", ["x", "pp"], ["xp"]))
        inits.append(nh.from_array(np.asarray(pre_pad, np.int64), "pp"))
        src = "x" if pre_pad is None else "xp"
    attrs = {"strides": list(strides)}
    if pads is not None:
        attrs["pads"] = list(pads)
    else:
        attrs["auto_pad"] = auto_pad
    nodes += [h.make_node("Conv", [src, "w", "b"], ["c"], **attrs), h.make_node("Relu", ["c"], ["y"])]
    inits += [nh.from_array(rng.normal(0, 0.3, (cout, cin) + tuple(kernel)).astype(np.float32), "w"),
              nh.from_array(rng.normal(0, 0.1, cout).astype(np.float32), "b")]
    out = [1, cout] + ["d%d" % i for i in range(len(kernel))]
    g = h.make_graph(nodes, name, [h.make_tensor_value_info("x", TP.FLOAT, [1, cin] + list(shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, out)], inits)
    path = tmp_path / f"{name}.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return load_model(path)


CASES = {
    # name: (cin, cout, kernel, strides, input spatial shape, padding)
    "waveform_lowpass": (1, 1, (64,), (2,), (1030,), {"pads": [0, 0]}),          # basic-pitch's octave filter
    "stereo_padded": (2, 1, (1, 32), (1, 2), (1, 517), {"pre_pad": [0, 0, 0, 5, 0, 0, 0, 7], "pads": [0, 0, 0, 0]}),
    "one_in_wide_kernel": (1, 8, (7, 7), (1, 3), (12, 40), {"auto_pad": "SAME_UPPER"}),
    "score_map": (8, 1, (5, 5), (1, 1), (10, 23), {"auto_pad": "SAME_UPPER"}),
    "first_layer": (3, 16, (3, 3), (2, 2), (17, 17), {"pads": [1, 1, 1, 1]}),
    "narrow_both": (8, 8, (3, 9), (1, 1), (6, 30), {"auto_pad": "SAME_UPPER"}),
}


def _samples(cin, shape, n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.normal(0, 1, (1, cin) + tuple(shape)).astype(np.float32)} for _ in range(n)]


def _conv_weights(tm):
    return sorted(tuple(tm.graph.tensors[op.inputs[1]].shape) for op in tm.graph.ops if op.opcode == "CONV_2D")


@pytest.mark.parametrize("case", sorted(CASES))
def test_blocked_convolutions_compute_the_same_sums(tmp_path, case):
    cin, cout, kernel, strides, shape, pad = CASES[case]
    model = _conv_model(tmp_path, cin, cout, kernel, strides, shape, name=case, **pad)
    samples = _samples(cin, shape, 10)
    low, ranges, _ = prepare(model, samples[:6], "minmax")
    original = [tuple(low.graph.tensors[op.inputs[1]].shape) for op in low.graph.ops if op.opcode == "CONV_2D"]
    (co, kh, kw, ci), = original
    # int8: the blocked convolution is the same integer arithmetic on the same grids, bit for bit
    with speed.disabled():
        plain = low.finish("int8", ranges=ranges)
    blocked = low.finish("int8", ranges=ranges)
    (bco, bkh, bkw, bci), = _conv_weights(blocked)
    p = bco // co
    assert p > 1 or bci > ci, "the int8 convolution was not blocked"
    assert bci == ci * strides[-1] * p and bkh == kh
    assert blocked.stats["quantization"]["speed"]["blocked_convs"] == 1
    assert blocked.stats["quantization"]["speed"]["blocked_weights_added"] == bco * bkh * bkw * bci - co * kh * kw * ci
    got = run_tflite(blocked.data, blocked.io, samples[6:], ["y"])
    ref = run_tflite(plain.data, plain.io, samples[6:], ["y"])
    for g, r in zip(got, ref):      # the same int32 sums; XNNPACK's kernels for the two shapes may round the
        assert g["y"].shape == r["y"].shape     # requantization differently: one output step at most, rarely
        step = np.diff(np.unique(r["y"])).min()
        assert np.abs(g["y"] - r["y"]).max() <= step * 1.001
        assert np.mean(g["y"] != r["y"]) <= 0.05
    # float: the same sums in another order, against onnxruntime
    fp32 = low.finish("fp32")
    out = run_tflite(fp32.data, fp32.io, samples[6:], ["y"])
    for s, o in zip(samples[6:], out):
        want = run_model(model, s, ["y"])[0]
        assert o["y"].shape == want.shape
        np.testing.assert_allclose(o["y"], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    if cout < 16:
        assert fp32.stats["blocked_convs"]["convs"] == 1 and _conv_weights(fp32) != original
    else:       # a wide float convolution is left alone: XNNPACK's float kernels do not waste its tiles
        assert fp32.stats["blocked_convs"]["convs"] == 0 and _conv_weights(fp32) == original


def test_a_merged_pad_leaves_one_pad(tmp_path):
    cin, cout, kernel, strides, shape, pad = CASES["stereo_padded"]
    model = _conv_model(tmp_path, cin, cout, kernel, strides, shape, name="merged", **pad)
    low, ranges, _ = prepare(model, _samples(cin, shape, 4), "minmax")
    tm = low.finish("int8", ranges=ranges)
    assert [op.opcode for op in tm.graph.ops].count("PAD") == 1


def test_mixed_precision_float_convolutions_are_not_blocked(tmp_path):
    cin, cout, kernel, strides, shape, pad = CASES["score_map"]
    model = _conv_model(tmp_path, cin, cout, kernel, strides, shape, name="kept", **pad)
    samples = _samples(cin, shape, 6)
    low, ranges, _ = prepare(model, samples, "minmax")
    conv = next(op for op in low.graph.ops if op.opcode == "CONV_2D")
    tm = low.finish("int8", ranges=ranges, keep_float={conv.outputs[0]})
    assert tm.stats["quantization"]["speed"]["blocked_convs"] == 0
    convs = [op for op in tm.graph.ops if op.opcode == "CONV_2D"]
    assert len(convs) == 1 and tm.graph.tensors[convs[0].inputs[1]].dtype == np.float32


def test_the_weight_budget_leaves_a_convolution_that_would_grow_too_much(monkeypatch, tmp_path):
    cin, cout, kernel, strides, shape, pad = CASES["narrow_both"]
    model = _conv_model(tmp_path, cin, cout, kernel, strides, shape, name="budget", **pad)
    low, ranges, _ = prepare(model, _samples(cin, shape, 4), "minmax")
    monkeypatch.setattr(passes, "_GROWTH", 100)
    tm = low.finish("int8", ranges=ranges)
    assert tm.stats["quantization"]["speed"]["blocked_convs"] == 0
    assert tm.stats["quantization"]["speed"]["blocked_weights_added"] == 0


@pytest.mark.parametrize("args,expected", [
    ((64, 2, 1, 1, "int8"), 32),           # 1 -> 1 channel: as wide a tile as 8x inflation allows
    ((256, 8, 1, 36, "int8"), 1),          # already 36 wide: one block of 8 samples per output, no growth
    ((3, 1, 32, 32, "int8"), None),        # an ordinary convolution
    ((3, 2, 3, 16, "float"), None),        # float: only narrow outputs
    ((5, 1, 8, 1, "float"), 16),
])
def test_block_size_rule(args, expected):
    assert passes._block_size(*args) == expected


def test_one_channel_pads_are_padded_as_three_dimensional():
    from ai_edge_litert.interpreter import Interpreter
    g = Graph()
    x = g.add("x", (1, 9, 11, 1), np.float32)
    y = g.add("y", (1, 12, 17, 1), np.float32)
    g.op("PAD", [x, g.const(np.asarray([[0, 0], [1, 2], [2, 4], [0, 0]], np.int32), "pads")], [y],
         fb.PadOptionsT())
    g.inputs, g.outputs = [x], [y]
    assert passes.narrow_pads(g) == 1
    assert [op.opcode for op in g.ops] == ["RESHAPE", "PAD", "RESHAPE"]
    pad = g.ops[1]
    assert g.tensors[pad.inputs[0]].shape == (1, 9, 11)
    assert g.tensors[pad.inputs[1]].data.tolist() == [[0, 0], [1, 2], [2, 4]]
    it = Interpreter(model_content=serialize(g), num_threads=1)
    it.allocate_tensors()
    v = np.random.default_rng(0).normal(0, 1, (1, 9, 11, 1)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], v)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_array_equal(got, np.pad(v, [(0, 0), (1, 2), (2, 4), (0, 0)]))
    g2 = Graph()            # a channel that is padded, or more than one channel: left alone
    x2 = g2.add("x", (1, 9, 11, 2), np.float32)
    g2.op("PAD", [x2, g2.const(np.asarray([[0, 0], [1, 2], [2, 4], [0, 0]], np.int32), "pads")],
          [g2.add("y", (1, 12, 17, 2), np.float32)], fb.PadOptionsT())
    assert passes.narrow_pads(g2) == 0


def test_identical_constants_share_one_buffer():
    g = Graph()
    data = np.arange(24, dtype=np.float32)
    x = g.add("x", (24,), np.float32)
    a = g.const(data, "a")
    b = g.const(data.reshape(4, 6), "b")
    ya, yb = g.add("ya", (24,), np.float32), g.add("yb", (4, 6), np.float32)
    g.op("ADD", [x, a], [ya], fb.AddOptionsT())
    g.op("RESHAPE", [ya, g.const(np.asarray([4, 6], np.int32), "s")], [yb])
    g.op("ADD", [yb, b], [g.add("z", (4, 6), np.float32)], fb.AddOptionsT())
    g.inputs, g.outputs = [x], ["z"]
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(serialize(g), 0))
    sub = m.subgraphs[0]
    byname = {t.name.decode(): t.buffer for t in sub.tensors}
    assert byname["a"] == byname["b"] != 0
    assert len(m.buffers) == 3          # the empty buffer, the shared weights, the reshape's shape
