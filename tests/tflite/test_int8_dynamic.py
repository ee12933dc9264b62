"""int8-dynamic on XNNPACK: depthwise weights fp16 (no dynamic depthwise kernel), int8 scales XNNPACK takes, and
wide convolutions back in fp16 when int8 weights on them miss the gate. Real LiteRT, real builds."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.build import build
from edgepack.model import load_model
from edgepack.targets.tflite.convert import lower
from edgepack.targets.tflite.quant import partitions
from edgepack.targets.tflite.quant.full_integer import weight_channel_scales
from edgepack_runtime import Runtime


def _net(path, tail: float):
    """x -> 7x7 conv whose every kernel is a centre tap of 1 and 48 taps of ``tail`` -> Relu -> 1x1 conv ->
    3x3 depthwise conv (128 channels) -> 1x1 conv. Tails under half an int8 step of the kernel (1 / 254) round
    to zero: the 7x7 conv then loses 48 * tail of its gain on a smooth input."""
    rng = np.random.default_rng(0)
    w7 = np.full((16, 4, 7, 7), tail, np.float32)
    w7[:, :, 3, 3] = 0.0
    for o in range(16):
        w7[o, o % 4, 3, 3] = 1.0
    inits = [nh.from_array(w7, "w7"), nh.from_array(rng.normal(0, 0.3, (128, 16, 1, 1)).astype(np.float32), "w1"),
             nh.from_array(rng.normal(0, 0.3, (128, 1, 3, 3)).astype(np.float32), "wd"),
             nh.from_array(rng.normal(0, 0.1, (8, 128, 1, 1)).astype(np.float32), "w2")]
    nodes = [h.make_node("Conv", ["x", "w7"], ["a"], pads=[3, 3, 3, 3]), h.make_node("Relu", ["a"], ["r"]),
             h.make_node("Conv", ["r", "w1"], ["b"]),
             h.make_node("Conv", ["b", "wd"], ["d"], pads=[1, 1, 1, 1], group=128),
             h.make_node("Conv", ["d", "w2"], ["y"])]
    g = h.make_graph(nodes, "tails", [h.make_tensor_value_info("x", TP.FLOAT, [1, 4, 16, 16])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 8, 16, 16])], inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


def _calib(path, n=30):
    rng = np.random.default_rng(1)
    x = 5.0 + 0.3 * rng.standard_normal((n, 1, 4, 16, 16))        # smooth and positive: the tails add up
    np.savez(path, x=x.astype(np.float32))
    return path


def test_depthwise_weights_are_fp16_and_every_op_is_delegated(tmp_path):
    low = lower(load_model(_net(tmp_path / "m.onnx", 0.001)))
    tm = low.finish("int8-dynamic")
    ops = {op.opcode: op for op in tm.graph.ops}
    dw = tm.graph.tensors[ops["DEPTHWISE_CONV_2D"].inputs[1]]
    assert dw.dtype == np.float32 and tm.graph.producers()[dw.name].opcode == "DEQUANTIZE"     # fp16 behind it
    convs = [tm.graph.tensors[op.inputs[1]].dtype for op in tm.graph.ops if op.opcode == "CONV_2D"]
    assert convs == [np.int8] * 3
    assert tm.stats["compressed_weights"] == {"fp16": 1, "int8": 3}
    rep = partitions.report(tm.data)
    assert rep["partitions"] == 1 and rep["not_delegated"] == {}, rep
    narrow = low.finish("int8-dynamic", dynamic_convs="pointwise")
    kinds = {tuple(narrow.graph.tensors[op.inputs[1]].shape[1:3]): narrow.graph.tensors[op.inputs[1]].dtype
             for op in narrow.graph.ops if op.opcode == "CONV_2D"}
    assert kinds == {(7, 7): np.float32, (1, 1): np.int8} and narrow.stats["compressed_weights"]["fp16"] == 2
    with pytest.raises(ValueError, match="dynamic_convs"):
        low.finish("int8-dynamic", dynamic_convs="some")


def test_a_channel_of_subnormal_weights_gets_a_scale_xnnpack_takes():
    amax = np.array([1.0, 3e-40, 0.0, 7e-36, 4.5e-32, 1.5e-7])          # PP-OCRv4 rec's smallest channels
    s = weight_channel_scales(amax)
    assert s.dtype == np.float32 and s[0] == np.float32(1 / 127) and list(s[1:5]) == [1.0] * 4
    assert s[5] == np.float32(1.5e-7 / 127)            # small but meaningful weights keep their own scale


def _vanishing(path, *values):
    """``_net`` with the first 1x1 conv's output channels 5, 6, ... set to ``values`` (all weights)."""
    _net(path, 0.001)
    m = onnx.load(str(path))
    w1 = next(i for i in m.graph.initializer if i.name == "w1")
    arr = nh.to_array(w1).copy()
    for k, v in enumerate(values):
        arr[5 + k] = v
    w1.CopyFrom(nh.from_array(arr, "w1"))
    onnx.save(m, str(path))
    return path


def test_subnormal_weights_still_load_and_delegate(tmp_path):
    """PP-OCRv4 rec has 1x1 kernels with channels of 3e-40 weights: their int8 scales were subnormal, and
    XNNPACK left those convolutions to TFLite's kernels (or refused a FULLY_CONNECTED model outright)."""
    path = _vanishing(tmp_path / "m.onnx", 3e-40, 2e-36)
    tm = lower(load_model(path)).finish("int8-dynamic")
    rep = partitions.report(tm.data)
    assert rep["partitions"] == 1 and rep["not_delegated"] == {}, rep


@pytest.mark.parametrize("tail,kept", [(0.0035, "pointwise"), (0.0005, "all")])
def test_wide_convolutions_go_fp16_when_their_int8_weights_miss_the_gate(tmp_path, tail, kept):
    src = _net(tmp_path / "m.onnx", tail)
    res = build(str(src), calibration=_calib(tmp_path / "c.npz"), holdout=0.3, precision="int8-dynamic",
                out=tmp_path / "b.edgepack")
    cpu = res.manifest["targets"][0]
    rec = cpu["dynamic_convs"]
    assert rec["kept"] == kept and cpu["parity"]["passed"]
    if kept == "pointwise":          # 48 tails of 0.0035 round to zero: 17% of the gain
        assert rec["all"]["passed"] is False and rec["all"]["max_rel_error"] > 0.1
        assert rec["pointwise"]["passed"] and rec["pointwise"]["max_rel_error"] < 0.05
    else:                            # 48 x 0.0005 = 2.4%: the gate holds with every convolution int8
        assert rec["all"]["passed"] and "pointwise" not in rec
    with Runtime.open(res.path) as rt:
        assert rt.self_check()["passed"]


def test_the_build_command_says_when_wide_convolutions_went_fp16(tmp_path):
    from typer.testing import CliRunner

    from edgepack.cli.main import app
    src = _net(tmp_path / "m.onnx", 0.0035)
    result = CliRunner().invoke(app, ["build", str(src), "--precision", "int8-dynamic", "--calibration",
                                      str(_calib(tmp_path / "c.npz")), "--holdout", "0.3"])
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "int8 weights on 1x1 convolutions and fully-connected ops; wider kernels fp16" in text
    assert "missed the gate" in text


def test_full_integer_int8_delegates_a_layer_with_vanishing_channels(tmp_path):
    """Static int8 too: PP-OCRv4 rec's two 1x1 convolutions with 2e-38 channels stayed on TFLite's kernels."""
    from edgepack.targets.tflite.quant.pipeline import prepare
    path = _vanishing(tmp_path / "m.onnx", 2e-38, 7e-36)
    x = np.load(_calib(tmp_path / "c.npz"))["x"]
    low, ranges, _ = prepare(load_model(path), [{"x": v} for v in x[:8]], "minmax")
    rep = partitions.report(low.finish("int8", ranges=ranges).data)
    assert rep["partitions"] == 1 and rep["not_delegated"] == {}, rep
