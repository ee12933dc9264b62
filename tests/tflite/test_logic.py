"""Comparison, logic, Where and Cast (ops/logic.py) in the real LiteRT interpreter."""
import numpy as np
import onnx
import pytest

from edgepack.errors import UnsupportedOpsError
from edgepack.targets.tflite import convert

from .harness import assert_converts
from .test_elementwise import assert_exact, node_model, rand

TP_FLOAT = onnx.TensorProto.FLOAT
CMP = {"Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
       "GreaterOrEqual": np.greater_equal}
SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((2, 1, 3, 1, 2), (1, 4, 1, 2, 1)),
          ((2, 1, 3, 1, 2, 1), (1, 2, 1, 2, 1, 3))]


@pytest.mark.parametrize("op", list(CMP))
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.int8, np.uint8, np.int16])
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_comparison(op, dtype, sa, sb):
    a, b = rand(sa, dtype, -3, 4), rand(sb, dtype, -3, 4)
    if dtype == np.float32:
        a, b = np.round(a), np.round(b)  # ties, so that the *_EQUAL variants are exercised
    assert_exact(node_model(op, {"a": a, "b": b}, np.bool_), {"a": a, "b": b}, {"y": CMP[op](a, b)})


def test_comparison_with_constant():
    a = rand((2, 3, 4), np.int64, -5, 5)
    m = node_model("Less", {"a": a}, np.bool_, {"b": np.array([0, 1, -1, 2], np.int64)})
    assert_converts(m, {"a": a})


@pytest.mark.parametrize("op,ref", [("And", np.logical_and), ("Or", np.logical_or), ("Xor", np.logical_xor),
                                    ("Equal", np.equal)])
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_bool_binary(op, ref, sa, sb):
    a, b = rand(sa, np.int8, 0, 2).astype(bool), rand(sb, np.int8, 0, 2).astype(bool)
    assert_exact(node_model(op, {"a": a, "b": b}, np.bool_), {"a": a, "b": b}, {"y": ref(a, b)})


def test_not():
    a = rand((2, 3, 4, 5), np.int8, 0, 2).astype(bool)
    assert_exact(node_model("Not", {"a": a}, np.bool_), {"a": a}, {"y": ~a})


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.int8, np.bool_])
@pytest.mark.parametrize("sc,sx,sy", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), ()),
                                      ((2, 1, 3, 1, 2), (1, 2, 1, 2, 1), (2,)),
                                      ((2, 1, 3, 1, 2, 1), (1, 2, 1, 2, 1, 3), (2, 1, 1, 1, 1, 1))])
def test_where(dtype, sc, sx, sy):
    c = rand(sc, np.int8, 0, 2).astype(bool)
    x, y = rand(sx, np.int8, -9, 9).astype(dtype), rand(sy, np.int8, -9, 9).astype(dtype)
    feeds = {"c": c, "x": x, "y": y}
    assert_exact(node_model("Where", feeds, dtype, outs=("z",)), feeds, {"z": np.where(c, x, y)})


CAST_TYPES = [np.float32, np.int32, np.int64, np.int16, np.int8, np.uint8, np.bool_]


def _cast_source(src):
    if src == np.float32:  # in range of every target type; truncation toward zero, zero, halves
        return np.array([-2.7, -1.5, -0.5, -0.0, 0.0, 0.4, 1.5, 2.9, 100.2, 7.0], np.float32)
    if src == np.bool_:
        return np.array([True, False, True, True], bool)
    info = np.iinfo(src)
    values = np.array([info.min, -129, -1, 0, 1, 127, 128, 255, 256, info.max], np.int64)
    return values.clip(info.min, info.max).astype(src)


@pytest.mark.parametrize("src", CAST_TYPES)
@pytest.mark.parametrize("dst", CAST_TYPES)
def test_cast(src, dst):
    x = _cast_source(src)
    if src == np.float32 and np.dtype(dst).kind == "u":
        x = np.abs(x)  # negative float -> unsigned is undefined in ONNX
    m = node_model("Cast", {"x": x}, dst, to=int(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dst))))
    res = assert_exact(m, {"x": x}, {"y": x.astype(dst)})
    assert ("CAST" in res.stats["op_histogram"]) == (src != dst)


def test_cast_like_and_float16():
    x = _cast_source(np.float32)
    m = node_model("CastLike", {"x": x}, np.int64, {"like": np.zeros((), np.int64)}, opset=15)
    assert_exact(m, {"x": x}, {"y": x.astype(np.int64)})
    x16 = x.astype(np.float16)
    m = node_model("Cast", {"x": x16}, np.float32, to=TP_FLOAT)
    assert_exact(m, {"x": x16}, {"y": x16.astype(np.float32)})



def test_cast_to_float64_is_refused():
    m = onnx.shape_inference.infer_shapes(node_model("Cast", {"x": np.ones(3, np.float32)}, np.float64,
                                                     to=onnx.TensorProto.DOUBLE))
    with pytest.raises(UnsupportedOpsError, match="float64"):
        convert(m)


def test_mask_chain_keeps_nhwc():
    """Conv -> Greater(0) -> Where(mask, conv, 0.1 * conv) -> Conv (a leaky ReLU spelled out): no TRANSPOSE."""
    from onnx import helper as h
    from onnx import numpy_helper as nh
    inits = {"w1": rand((8, 3, 3, 3), np.float32), "w2": rand((4, 8, 1, 1), np.float32),
             "zero": np.zeros((8, 1, 1), np.float32), "k": np.array(0.1, np.float32)}
    nodes = [h.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Greater", ["c", "zero"], ["m"]),
             h.make_node("Mul", ["c", "k"], ["s"]), h.make_node("Where", ["m", "c", "s"], ["w"]),
             h.make_node("Not", ["m"], ["nm"]), h.make_node("Cast", ["nm"], ["f"], to=TP_FLOAT),
             h.make_node("Add", ["w", "f"], ["a"]), h.make_node("Conv", ["a", "w2"], ["y"])]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                     [nh.from_array(v, n) for n, v in inits.items()])
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), max_transposes=0)
