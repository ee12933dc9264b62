"""Elementwise arithmetic and unary math (ops/elementwise.py, ops/math.py) in the real LiteRT interpreter."""
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.errors import UnsupportedOpsError
from edgepack.targets.tflite import convert

from .harness import assert_converts, run_tflite

RNG = np.random.default_rng(0)
TYPES = {np.float32: TP.FLOAT, np.int32: TP.INT32, np.int64: TP.INT64, np.int8: TP.INT8, np.uint8: TP.UINT8,
         np.int16: TP.INT16, np.bool_: TP.BOOL, np.float64: TP.DOUBLE, np.float16: TP.FLOAT16}


def node_model(op, feeds: dict, out_dtype, inits: dict | None = None, opset=17, outs=("y",), **attrs):
    """One-node model; ``feeds`` are graph inputs and ``inits`` initializers, both name -> array."""
    inits = inits or {}
    names = [n for n in list(feeds) + list(inits)] if "order" not in attrs else attrs.pop("order")
    g = h.make_graph([h.make_node(op, names, list(outs), **attrs)], "t",
                     [h.make_tensor_value_info(n, TYPES[v.dtype.type], v.shape) for n, v in feeds.items()],
                     [h.make_tensor_value_info(o, TYPES[np.dtype(out_dtype).type], None) for o in outs],
                     [nh.from_array(v, n) for n, v in inits.items()])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def run(model, feeds):
    """Convert (after shape inference) and run; return (outputs, conversion result)."""
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    res = convert(model)
    return run_tflite(res, feeds), res


def assert_exact(model, feeds, want: dict):
    got, res = run(model, feeds)
    for name, w in want.items():
        assert got[name].dtype == w.dtype, (got[name].dtype, w.dtype)
        np.testing.assert_array_equal(got[name], w)
    return res


def rand(shape, dtype, lo=-50, hi=50):
    if np.dtype(dtype).kind == "f":
        return np.asarray(RNG.standard_normal(shape), dtype)
    lo = max(lo, 0) if np.dtype(dtype).kind == "u" else lo
    return np.asarray(RNG.integers(lo, hi, shape), dtype)


def nonzero(shape, dtype):
    x = rand(shape, dtype, -9, 10)
    if np.dtype(dtype).kind == "f":
        return np.asarray(np.sign(x) * (np.abs(x) + 0.5), dtype)
    return np.asarray(np.where(x == 0, 3, x), dtype)


BROADCASTS = [((3, 4), (3, 4)), ((2, 3, 4, 5), (3, 1, 1)), ((2, 3, 4, 5), ()), ((1, 4), (3, 1)),
              ((2, 1, 3, 1, 2), (1, 4, 1, 2, 1)), ((2, 1, 3, 1, 2, 1), (1, 2, 1, 2, 1, 3)),
              ((2, 1, 2, 1, 2, 1, 2), (1, 2, 1, 2, 1, 2, 1))]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("sa,sb", BROADCASTS)
@pytest.mark.parametrize("const_b", [False, True])
def test_binary_float(op, sa, sb, const_b):
    a, b = rand(sa, np.float32), nonzero(sb, np.float32)
    m = node_model(op, {"a": a} if const_b else {"a": a, "b": b}, np.float32, {"b": b} if const_b else None)
    assert_converts(m, {"a": a} if const_b else {"a": a, "b": b}, rtol=1e-5, atol=1e-6)


def _c_semantics(op, a, b):
    """numpy with C integer semantics: wrap-around, division truncating toward zero."""
    if op == "Div":
        q = np.abs(a.astype(np.int64)) // np.abs(b.astype(np.int64)) * np.sign(a) * np.sign(b)
        return q.astype(a.dtype)
    return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply}[op](a, b)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.uint8, np.int16])
@pytest.mark.parametrize("sa,sb", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 3, 1, 2), (1, 4, 1, 2, 1))])
def test_binary_int_exact(op, dtype, sa, sb):
    a, b = rand(sa, dtype, -120, 120), nonzero(sb, dtype)
    with np.errstate(over="ignore"):
        want = _c_semantics(op, a, b)
    res = assert_exact(node_model(op, {"a": a, "b": b}, dtype), {"a": a, "b": b}, {"y": want})
    if np.dtype(dtype).itemsize < 4:
        assert res.stats["op_histogram"]["CAST"] == 3  # widened to int32 and back


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_div_truncates_toward_zero(dtype):
    a = np.array([7, -7, 7, -7, 1, -1, 0, 9], dtype)
    b = np.array([2, 2, -2, -2, 3, 3, -5, -3], dtype)
    assert_exact(node_model("Div", {"a": a, "b": b}, dtype), {"a": a, "b": b},
                 {"y": np.array([3, -3, -3, 3, 0, 0, 0, -3], dtype)})


INT_TYPES = (np.int32, np.int64, np.int8, np.int16, np.uint8)


@pytest.mark.parametrize("fmod,dtype", [(f, t) for f in (0, 1) for t in INT_TYPES]
                         + [(1, np.float32)])  # ONNX requires fmod=1 for floating point
@pytest.mark.parametrize("const_b", [False, True])
def test_mod(fmod, dtype, const_b):
    a = np.array([[7, -7, 7, -7, 0, 5, -9, 13]] if dtype != np.uint8 else [[7, 0, 5, 9, 13, 1, 2, 200]], dtype)
    a = (a * 1.25).astype(dtype) if dtype == np.float32 else a
    b = np.array([[3], [-3]], dtype) if dtype != np.uint8 else np.array([[3], [7]], dtype)
    want = (np.fmod if fmod else np.mod)(a, b).astype(dtype)
    feeds = {"a": a} if const_b else {"a": a, "b": b}
    m = node_model("Mod", feeds, dtype, {"b": b} if const_b else None, fmod=fmod, order=["a", "b"])
    assert_exact(m, feeds, {"y": want})


@pytest.mark.parametrize("op,ref", [("Sum", np.add), ("Max", np.maximum), ("Min", np.minimum), ("Mean", None)])
@pytest.mark.parametrize("shapes", [[(3, 4)], [(3, 4), (3, 4)], [(2, 3, 4), (4,), (3, 1)],
                                    [(2, 1, 3, 1, 2), (1, 4, 1, 2, 1), (2,)]])
def test_variadic_float(op, ref, shapes):
    feeds = {f"x{i}": rand(s, np.float32) for i, s in enumerate(shapes)}
    assert_converts(node_model(op, feeds, np.float32), feeds, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op,ref", [("Sum", np.add), ("Max", np.maximum), ("Min", np.minimum)])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.uint8])
def test_variadic_int(op, ref, dtype):
    feeds = {"x0": rand((2, 3), dtype, -40, 40), "x1": rand((3,), dtype, -40, 40), "x2": rand((2, 1), dtype, -40, 40)}
    want = ref(ref(feeds["x0"], feeds["x1"]), feeds["x2"])
    assert_exact(node_model(op, feeds, dtype), feeds, {"y": want.astype(dtype)})


@pytest.mark.parametrize("e,opcode", [(1.0, "RESHAPE"), (2.0, "SQUARE"), (3.0, "SQUARE"), (0.5, "SQRT"),
                                      (-0.5, "RSQRT"), (-1.0, "DIV"), (1.7, "POW")])
def test_pow_constant_exponent(e, opcode):
    x = (np.abs(rand((2, 3, 4), np.float32)) + 0.1).astype(np.float32)
    res = assert_converts(node_model("Pow", {"x": x}, np.float32, {"e": np.array(e, np.float32)}), {"x": x},
                          rtol=1e-5, atol=1e-6)
    assert opcode in res.stats["op_histogram"]
    assert ("POW" in res.stats["op_histogram"]) == (opcode == "POW")


@pytest.mark.parametrize("xt,et", [(np.float32, np.float32), (np.float32, np.int64), (np.float32, np.int32),
                                   (np.int32, np.int32), (np.int64, np.int64), (np.int32, np.float32),
                                   (np.int64, np.float32)])
def test_pow_types(xt, et):
    x = np.array([[1, 2, 3, -2], [0, 5, -3, 4]], xt)
    e = np.array([4, 3, 2, 3], et)
    assert_converts(node_model("Pow", {"x": x, "e": e}, xt), {"x": x, "e": e}, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["Sqrt", "Exp", "Log", "Floor", "Ceil", "Sin", "Cos", "Reciprocal", "Abs", "Neg",
                                "Sign", "Round"])
def test_unary_float(op, shape=(2, 3, 4, 5)):
    x = rand(shape, np.float32) * 3
    if op in ("Sqrt", "Log"):
        x = np.abs(x) + 0.01
    if op == "Round":  # halves round to even
        x.ravel()[:8] = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 2.4999]
    assert_converts(node_model(op, {"x": x.astype(np.float32)}, np.float32), rtol=1e-5, atol=1e-6,
                    feeds={"x": x.astype(np.float32)})


@pytest.mark.parametrize("op,ref", [("Abs", np.abs), ("Neg", np.negative), ("Sign", np.sign)])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.int16])
def test_unary_int(op, ref, dtype):
    x = rand((3, 5), dtype, -100, 100)
    x[0, :3] = [0, 1, -1]
    assert_exact(node_model(op, {"x": x}, dtype, opset=17), {"x": x}, {"y": ref(x).astype(dtype)})


def test_erf_accuracy():
    x = np.concatenate([np.linspace(-6, 6, 20001), np.geomspace(1e-7, 1, 2001), -np.geomspace(1e-7, 1, 2001),
                        [0.0, 0.5, -0.5, np.nextafter(0.5, 0)]]).astype(np.float32)
    got, _ = run(node_model("Erf", {"x": x}, np.float32), {"x": x})
    want = np.array([math.erf(v) for v in x.astype(np.float64)])
    err = np.abs(got["y"] - want)
    assert err.max() < 1e-6
    assert (err / np.maximum(np.abs(want), 1e-30)).max() < 2e-6  # relative accuracy near 0 too


def test_is_nan_is_inf():
    x = np.array([1.0, np.nan, np.inf, -np.inf, 0.0, -3.0], np.float32)
    assert_exact(node_model("IsNaN", {"x": x}, np.bool_), {"x": x}, {"y": np.isnan(x)})
    for pos, neg in ((1, 1), (1, 0), (0, 1), (0, 0)):
        want = (np.isposinf(x) & bool(pos)) | (np.isneginf(x) & bool(neg))
        m = node_model("IsInf", {"x": x}, np.bool_, detect_positive=pos, detect_negative=neg)
        assert_exact(m, {"x": x}, {"y": want})


@pytest.mark.parametrize("op", ["Add", "Sqrt", "Abs"])
def test_float64_is_refused(op):
    feeds = {"a": np.ones((2, 2))} if op != "Add" else {"a": np.ones((2, 2)), "b": np.ones((2, 2))}
    m = onnx.shape_inference.infer_shapes(node_model(op, feeds, np.float64))
    with pytest.raises(UnsupportedOpsError, match="float64"):
        convert(m)


def test_cnn_chain_needs_no_transpose():
    """Conv -> Add(per-channel) -> Mul(per-channel) -> Abs -> Sqrt -> Pow 2 -> Sub -> Conv: NHWC throughout."""
    w1, w2 = rand((8, 3, 3, 3), np.float32), rand((4, 8, 1, 1), np.float32)
    inits = {"w1": w1, "w2": w2, "bias": rand((8, 1, 1), np.float32), "scale": rand((8, 1, 1), np.float32),
             "two": np.array(2.0, np.float32), "shift": rand((1, 8, 1, 1), np.float32)}
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), h.make_node("Add", ["c1", "bias"], ["a"]),
             h.make_node("Mul", ["a", "scale"], ["m"]), h.make_node("Abs", ["m"], ["ab"]),
             h.make_node("Sqrt", ["ab"], ["s"]), h.make_node("Pow", ["s", "two"], ["p"]),
             h.make_node("Sub", ["p", "shift"], ["d"]), h.make_node("Max", ["d", "m", "a"], ["mx"]),
             h.make_node("Conv", ["mx", "w2"], ["y"])]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 10, 10])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], [nh.from_array(v, n) for n, v in inits.items()])
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), rtol=1e-4, atol=1e-4, max_transposes=0)
