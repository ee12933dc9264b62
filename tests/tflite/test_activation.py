"""Activations (ops/activation.py) and the GELU pattern fusion (patterns.py) in the real LiteRT interpreter."""
import math

import numpy as np
import onnx
import pytest
from ai_edge_litert.interpreter import Interpreter
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.targets.tflite.context import Context
from edgepack.targets.tflite.patterns import fuse_patterns
from edgepack.targets.tflite.registry import TFLITE
from edgepack.targets.tflite.writer import serialize

from .harness import assert_converts, run_onnx
from .test_elementwise import assert_exact, node_model, rand

X = (rand((2, 3, 4, 5), np.float32) * 4).astype(np.float32)
X.ravel()[:6] = [0.0, -0.0, 40.0, -40.0, 1e-4, -1e-4]


@pytest.mark.parametrize("op,attrs,opset", [
    ("Relu", {}, 13), ("Sigmoid", {}, 13), ("Tanh", {}, 13), ("HardSwish", {}, 14),
    ("LeakyRelu", {}, 16), ("LeakyRelu", {"alpha": 0.3}, 16),
    ("HardSigmoid", {}, 13), ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}, 13),
    ("Elu", {}, 13), ("Elu", {"alpha": 0.5}, 13),
    ("Selu", {}, 13), ("Selu", {"alpha": 2.0, "gamma": 3.0}, 13),
    ("Celu", {}, 13), ("Celu", {"alpha": 2.0}, 13),
    ("Softplus", {}, 13), ("Softsign", {}, 13), ("Mish", {}, 18),
    ("ThresholdedRelu", {}, 13), ("ThresholdedRelu", {"alpha": 0.5}, 13),
    ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20),
])
def test_activation(op, attrs, opset):
    m = node_model(op, {"x": X}, np.float32, opset=opset, **attrs)
    assert_converts(m, {"x": X}, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.int16])
def test_relu_int(dtype):
    x = rand((3, 7), dtype, -100, 100)
    assert_exact(node_model("Relu", {"x": x}, dtype, opset=14), {"x": x}, {"y": np.maximum(x, 0).astype(dtype)})


@pytest.mark.parametrize("slope_shape", [(1,), (3, 1, 1), (5,), (4, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("const", [True, False])
def test_prelu(slope_shape, const):
    s = rand(slope_shape, np.float32)
    feeds = {"x": X} if const else {"x": X, "s": s}
    m = node_model("PRelu", feeds, np.float32, {"s": s} if const else None, order=["x", "s"])
    res = assert_converts(m, feeds, rtol=1e-5, atol=1e-6)
    assert "PRELU" in res.stats["op_histogram"]


def test_prelu_rank6_and_int():
    x, s = rand((2, 3, 2, 2, 3, 2), np.float32), rand((3, 1, 1, 1, 1), np.float32)
    assert_converts(node_model("PRelu", {"x": x}, np.float32, {"s": s}), {"x": x}, rtol=1e-5, atol=1e-6)
    xi, si = rand((2, 3, 4), np.int32), np.array([[2], [-3], [0]], np.int32)
    assert_exact(node_model("PRelu", {"x": xi}, np.int32, {"s": si}, opset=16), {"x": xi},
                 {"y": np.where(xi < 0, xi * si, xi).astype(np.int32)})


@pytest.mark.parametrize("lo,hi,opcode", [(0.0, 6.0, "RELU6"), (-1.0, 1.0, "RELU_N1_TO_1"), (0.0, None, "RELU"),
                                          (0.0, 1.0, "RELU_0_TO_1"), (-2.0, 3.0, "MINIMUM"), (None, 2.0, "MINIMUM"),
                                          (-0.5, None, "MAXIMUM"), (3.0, 1.0, "MINIMUM"), (None, None, None)])
@pytest.mark.parametrize("opset", [7, 13])
def test_clip_constant_bounds(lo, hi, opcode, opset):
    if opset < 11 and lo == 3.0:  # onnxruntime refuses min > max in the attribute form
        opset = 12
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        m = node_model("Clip", {"x": X}, np.float32, opset=opset, **attrs)
    else:
        inits = {k: np.array(v, np.float32) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
        m = node_model("Clip", {"x": X}, np.float32, inits, opset=opset,
                       order=["x", "lo" if lo is not None else "", "hi" if hi is not None else ""])
    res = assert_converts(m, {"x": X}, rtol=0, atol=0)
    if opcode:
        assert opcode in res.stats["op_histogram"]


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.int8, np.uint8])
@pytest.mark.parametrize("runtime", [False, True])
def test_clip_types_and_runtime_bounds(dtype, runtime):
    x = rand((3, 6), dtype, -100, 100)
    lo, hi = np.array(5 if dtype == np.uint8 else -7, dtype), np.array(30, dtype)
    feeds = {"x": x, "lo": lo, "hi": hi} if runtime else {"x": x}
    m = node_model("Clip", feeds, dtype, None if runtime else {"lo": lo, "hi": hi}, opset=13, order=["x", "lo", "hi"])
    assert_exact(m, feeds, {"y": np.clip(x, lo, hi).astype(dtype)})


def test_activation_chain_needs_no_transpose():
    """Conv -> PRelu(per channel) -> Clip(0, 6) -> HardSigmoid -> Mish -> Selu -> Conv: NHWC throughout."""
    inits = {"w1": rand((8, 3, 3, 3), np.float32), "w2": rand((4, 8, 1, 1), np.float32),
             "slope": rand((8, 1, 1), np.float32), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    nodes = [h.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]), h.make_node("PRelu", ["c", "slope"], ["p"]),
             h.make_node("Clip", ["p", "lo", "hi"], ["r6"]), h.make_node("HardSigmoid", ["r6"], ["hs"]),
             h.make_node("Mish", ["hs"], ["mi"]), h.make_node("Selu", ["mi"], ["se"]),
             h.make_node("Conv", ["se", "w2"], ["y"])]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], [nh.from_array(v, n) for n, v in inits.items()])
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), max_transposes=0)


# --- GELU pattern fusion -------------------------------------------------------------------------------------

def _c(name, v):
    return nh.from_array(np.asarray(v, np.float32), name)


def _erf_gelu(order: str, divide: bool, half: float = 0.5):
    scale = [h.make_node("Div", ["x", "k"], ["u"])] if divide else [h.make_node("Mul", ["k", "x"], ["u"])]
    body = [h.make_node("Erf", ["u"], ["e"]), h.make_node("Add", ["one", "e"], ["s"])]
    tail = {"x*s*h": [h.make_node("Mul", ["x", "s"], ["t"]), h.make_node("Mul", ["t", "half"], ["y"])],
            "h*x*s": [h.make_node("Mul", ["half", "x"], ["t"]), h.make_node("Mul", ["t", "s"], ["y"])],
            "x*(s*h)": [h.make_node("Mul", ["s", "half"], ["t"]), h.make_node("Mul", ["x", "t"], ["y"])]}[order]
    k = math.sqrt(2) if divide else 1 / math.sqrt(2)
    return scale + body + tail, [_c("k", k), _c("one", 1.0), _c("half", half)]


def _tanh_gelu(cube: str, coeff: float = 0.044715):
    """``cube``: how ``coeff * x^3`` is spelled; "jax": ``x * (x * (coeff * x))`` as jax2tf writes it (magika)."""
    pre = {"pow": [h.make_node("Pow", ["x", "three"], ["x3"]), h.make_node("Mul", ["c", "x3"], ["a"])],
           "mul": [h.make_node("Mul", ["x", "x"], ["x2"]), h.make_node("Mul", ["x2", "x"], ["x3"]),
                   h.make_node("Mul", ["c", "x3"], ["a"])],
           "jax": [h.make_node("Mul", ["c", "x"], ["cx"]), h.make_node("Mul", ["x", "cx"], ["cx2"]),
                   h.make_node("Mul", ["x", "cx2"], ["a"])]}[cube]
    nodes = pre + [h.make_node("Add", ["x", "a"], ["b"]),
                   h.make_node("Mul", ["b", "k"], ["bb"]), h.make_node("Tanh", ["bb"], ["th"]),
                   h.make_node("Add", ["th", "one"], ["s"]), h.make_node("Mul", ["x", "half"], ["hx"]),
                   h.make_node("Mul", ["hx", "s"], ["y"])]
    return nodes, [_c("three", 3.0), _c("c", coeff), _c("k", math.sqrt(2 / math.pi)), _c("one", 1.0),
                   _c("half", 0.5)]


def _convert_fused(nodes, inits, shape=(2, 5, 16), outputs=("y",)):
    """Converters, then fuse_patterns, then the real interpreter; returns (opcodes, outputs, expected)."""
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, shape)],
                     [h.make_tensor_value_info(o, TP.FLOAT, None) for o in outputs], inits)
    model = onnx.shape_inference.infer_shapes(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]))
    ctx = Context(model)
    ctx.graph.inputs.append(ctx.output("x"))
    for node, entry in zip(model.graph.node, TFLITE.preflight(model.graph, ctx.opsets, ctx)):
        ctx.node = node
        entry.fn(node, ctx)
    ctx.graph.outputs = list(outputs)
    fuse_patterns(ctx.graph)
    it = Interpreter(model_content=serialize(ctx.graph))
    it.allocate_tensors()
    x = (rand(shape, np.float32) * 3).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = {o: it.get_tensor(d["index"]) for o, d in zip(outputs, it.get_output_details())}
    return [op.opcode for op in ctx.graph.ops], got, run_onnx(model, {"x": x})


@pytest.mark.parametrize("order", ["x*s*h", "h*x*s", "x*(s*h)"])
@pytest.mark.parametrize("divide", [True, False])
def test_erf_gelu_is_fused(order, divide):
    opcodes, got, want = _convert_fused(*_erf_gelu(order, divide))
    assert opcodes == ["GELU"]
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cube", ["pow", "mul", "jax"])
def test_tanh_gelu_is_fused(cube):
    opcodes, got, want = _convert_fused(*_tanh_gelu(cube))
    assert opcodes == ["GELU"]
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cube", ["mul", "jax"])
def test_tanh_gelu_with_another_cubic_coefficient_is_left_alone(cube):
    opcodes, got, want = _convert_fused(*_tanh_gelu(cube, coeff=0.05))
    assert "GELU" not in opcodes and "TANH" in opcodes
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)


def test_tanh_gelu_whose_cube_is_read_elsewhere_stays_correct():
    """``x * (c x)`` is also an output: the product tree stops there, so the cube is not seen as private
    and the ops stay (the output keeps its value)."""
    nodes, inits = _tanh_gelu("jax")
    opcodes, got, want = _convert_fused(nodes, inits, outputs=("y", "cx2"))
    assert "GELU" not in opcodes
    for name in ("y", "cx2"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_not_gelu_is_left_alone():
    opcodes, got, want = _convert_fused(*_erf_gelu("x*s*h", True, half=0.6))
    assert "GELU" not in opcodes and "SELECT_V2" in opcodes
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)


def test_gelu_with_an_intermediate_output_stays_correct():
    nodes, inits = _erf_gelu("x*s*h", True)
    opcodes, got, want = _convert_fused(nodes, inits, outputs=("y", "e"))
    assert "GELU" in opcodes
    for name in ("y", "e"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
