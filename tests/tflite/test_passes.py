"""Peephole passes: BatchNormalization folded into convolutions, activations fused, shared weights stored once."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts

RNG = np.random.default_rng(9)


@pytest.fixture
def unblocked(monkeypatch):
    """Thin convolutions as they are (their blocked form, ``passes.block_thin_convs``, has its own tests in
    test_blocked_conv.py): these tests count the ops and channels of the plain graph."""
    from edgepack.targets.tflite import passes
    monkeypatch.setattr(passes, "_block_size", lambda *a, **k: None)


def _c(name, shape, positive=False):
    a = RNG.standard_normal(shape).astype(np.float32)
    return nh.from_array(np.abs(a) + 0.5 if positive else a, name)


def test_conv_batchnorm_relu_becomes_one_conv(unblocked):
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1], group=1),
             h.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]), h.make_node("Relu", ["bn"], ["r"]),
             h.make_node("Conv", ["r", "D"], ["d"], pads=[1, 1, 1, 1], group=8),
             h.make_node("BatchNormalization", ["d", "s", "b", "m", "v"], ["y"])]
    inits = [_c("W", (8, 3, 3, 3)), _c("D", (8, 1, 3, 3)), _c("s", (8,)), _c("b", (8,)), _c("m", (8,)),
             _c("v", (8,), positive=True)]
    g = h.make_graph(nodes, "bn", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 8, 8, 8])], inits)
    res = assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 15)]), max_transposes=0)
    assert res.stats["op_histogram"] == {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1}


def test_shared_weights_are_stored_once():
    w = _c("W", (16, 16))
    nodes = [h.make_node("MatMul", ["x", "W"], ["a"]), h.make_node("MatMul", ["a", "W"], ["y"])]
    g = h.make_graph(nodes, "shared", [h.make_tensor_value_info("x", TP.FLOAT, [2, 16])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [2, 16])], [w])
    res = assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))
    assert len(res.data) < 16 * 16 * 4 * 2            # one copy of the 1 KiB weight matrix
