"""Shape and data-movement converters (ops/shape.py, ops/index.py) against onnxruntime in the real LiteRT."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.errors import UnsupportedOpsError
from edgepack.targets.tflite import convert

from .harness import assert_converts

RNG = np.random.default_rng(11)


def _model(nodes, inputs, inits=(), opset=17, outputs=("y",)):
    """``inputs``: {name: (shape, TensorProto type)}; outputs have inferred types."""
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info(n, t, list(s)) for n, (s, t) in inputs.items()],
                     [h.make_tensor_value_info(o, TP.UNDEFINED, None) for o in outputs], list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _i64(name, values):
    return nh.from_array(np.asarray(values, np.int64), name)


@pytest.mark.parametrize("shape,target,allowzero", [
    ((2, 3, 4), [0, -1], 0),
    ((2, 3, 4), [-1, 0, 2], 0),
    ((2, 3, 4), [4, 0, 2], 0),       # 0 copies the input dimension
    ((2, 3, 4), [6, 4], 1),
    ((2, 3, 4), [24], 0),
    ((1, 8, 1, 1), [1, -1], 0),
])
@pytest.mark.parametrize("shape_const", [True, False])
def test_reshape(shape, target, allowzero, shape_const):
    ins = {"x": (shape, TP.FLOAT)}
    inits = [_i64("s", target)] if shape_const else []
    nodes = [h.make_node("Reshape", ["x", "s"], ["y"], allowzero=allowzero)]
    if not shape_const:  # the shape computed in the graph: Shape -> Gather -> Concat
        nodes[:0] = [h.make_node("Shape", ["x"], ["sh"]), h.make_node("Gather", ["sh", "k"], ["g"], axis=0),
                     h.make_node("Concat", ["g", "rest"], ["s"], axis=0)]
        inits = [_i64("k", [0]), _i64("rest", [-1])]
    assert_converts(_model(nodes, ins, inits, opset=14), rtol=0, atol=0)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_flatten(axis):
    res = assert_converts(_model([h.make_node("Flatten", ["x"], ["y"], axis=axis)], {"x": ((2, 3, 4), TP.FLOAT)}))
    assert res.stats["op_histogram"] == {"RESHAPE": 1}


@pytest.mark.parametrize("perm", [None, [0, 2, 3, 1], [3, 1, 0, 2], [1, 0, 2, 3]])
def test_transpose(perm):
    attrs = {} if perm is None else {"perm": perm}
    assert_converts(_model([h.make_node("Transpose", ["x"], ["y"], **attrs)], {"x": ((2, 3, 4, 5), TP.FLOAT)}))


@pytest.mark.parametrize("op,axes,shape", [("Squeeze", [1, -1], (2, 1, 3, 1)), ("Squeeze", None, (1, 3, 1)),
                                           ("Unsqueeze", [0, -1], (2, 3)), ("Unsqueeze", [3, 1], (2, 3))])
@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(op, axes, shape, opset):
    if op == "Unsqueeze" or axes is not None:
        node = (h.make_node(op, ["x"], ["y"], axes=axes) if opset < 13 else h.make_node(op, ["x", "a"], ["y"]))
        inits = [_i64("a", axes)] if opset >= 13 else []
    else:
        node, inits = h.make_node(op, ["x"], ["y"]), []
    assert_converts(_model([node], {"x": (shape, TP.FLOAT)}, inits, opset=opset))


@pytest.mark.parametrize("dtype", [TP.FLOAT, TP.INT64, TP.INT32, TP.BOOL])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(dtype, axis):
    ins = {"a": ((2, 3, 4), dtype), "b": ((2, 3, 4), dtype)}
    init = nh.from_array(np.ones((2, 3, 4), onnx.helper.tensor_dtype_to_np_dtype(dtype)), "c")
    m = _model([h.make_node("Concat", ["a", "c", "b"], ["y"], axis=axis)], ins, [init])
    assert assert_converts(m).stats["op_histogram"] == {"CONCATENATION": 1}


@pytest.mark.parametrize("form", ["attr", "input", "equal", "num_outputs"])
@pytest.mark.parametrize("dtype", [TP.FLOAT, TP.INT64, TP.BOOL])
def test_split(form, dtype):
    opset = {"attr": 11, "input": 13, "equal": 13, "num_outputs": 18}[form]
    inits = []
    if form == "attr":
        node = h.make_node("Split", ["x"], ["y", "z", "w"], axis=1, split=[1, 4, 2])
    elif form == "input":
        node, inits = h.make_node("Split", ["x", "s"], ["y", "z", "w"], axis=-2), [_i64("s", [2, 2, 3])]
    elif form == "equal":
        node = h.make_node("Split", ["x"], ["y", "z"], axis=2)
    else:  # 7 / 3 -> 3, 3, 1
        node = h.make_node("Split", ["x"], ["y", "z", "w"], axis=1, num_outputs=3)
    outs = list(node.output)
    res = assert_converts(_model([node], {"x": ((2, 7, 6), dtype)}, inits, opset=opset, outputs=outs))
    want = {"SLICE": len(outs)} if dtype == TP.BOOL else {"SPLIT_V": 1}  # SPLIT_V has no bool kernel
    assert res.stats["op_histogram"] == want


@pytest.mark.parametrize("shape,target", [((3, 1), [2, 3, 4]), ((1, 4), [3, 1]), ((2, 1, 3), [2, 5, 3]),
                                          ((4,), [2, 1, 4])])
@pytest.mark.parametrize("dtype", [TP.FLOAT, TP.INT64, TP.BOOL])
def test_expand(shape, target, dtype):
    m = _model([h.make_node("Expand", ["x", "s"], ["y"])], {"x": (shape, dtype)}, [_i64("s", target)])
    assert_converts(m)


@pytest.mark.parametrize("reps_const", [True, False])
@pytest.mark.parametrize("dtype", [TP.FLOAT, TP.INT64, TP.BOOL])
def test_tile(reps_const, dtype):
    reps = [2, 1, 3]
    if reps_const:
        m = _model([h.make_node("Tile", ["x", "r"], ["y"])], {"x": ((2, 3, 1), dtype)}, [_i64("r", reps)])
        feeds = None
    else:  # repeats fed at run time: the static output shape decides
        m = _model([h.make_node("Tile", ["x", "r"], ["y"])], {"x": ((2, 3, 1), dtype), "r": ((3,), TP.INT64)})
        m = onnx.shape_inference.infer_shapes(m)
        m.graph.output[0].type.tensor_type.shape.Clear()
        for d in (4, 3, 3):
            m.graph.output[0].type.tensor_type.shape.dim.add().dim_value = d
        x = RNG.integers(0, 5, (2, 3, 1)).astype(onnx.helper.tensor_dtype_to_np_dtype(dtype))
        feeds = {"x": x, "r": np.asarray(reps, np.int64)}
    assert assert_converts(m, feeds).stats["op_histogram"] == {"TILE": 1}


def test_shape_size_range_constant_of_shape_become_constants():
    nodes = [h.make_node("Shape", ["x"], ["sh"], start=1),               # [3, 4]
             h.make_node("ConstantOfShape", ["sh"], ["ones"], value=h.make_tensor("v", TP.FLOAT, [1], [2.0])),
             h.make_node("Size", ["x"], ["n"]),                          # 24
             h.make_node("Cast", ["n"], ["nf"], to=TP.FLOAT),
             h.make_node("Range", ["r0", "r1", "r2"], ["r"]),            # [0.5, 1.25, 2.0, 2.75]
             h.make_node("Mul", ["x", "ones"], ["a"]), h.make_node("Add", ["a", "r"], ["b"]),
             h.make_node("Div", ["b", "nf"], ["y"])]
    inits = [nh.from_array(np.asarray(v, np.float32), n) for n, v in (("r0", .5), ("r1", 3.0), ("r2", .75))]
    res = assert_converts(_model(nodes, {"x": ((2, 3, 4), TP.FLOAT)}, inits, opset=20, outputs=("y", "sh")))
    assert set(res.stats["op_histogram"]) == {"MUL", "ADD", "DIV", "CAST"}  # no SHAPE / FILL / RANGE kernels


def test_range_with_run_time_start_and_delta():
    nodes = [h.make_node("Squeeze", ["s1"], ["s"]), h.make_node("Squeeze", ["d1"], ["d"]),
             h.make_node("Range", ["s", "l", "d"], ["r"]), h.make_node("Add", ["x", "r"], ["y"])]
    m = _model(nodes, {"x": ((5,), TP.FLOAT), "s1": ((1,), TP.FLOAT), "d1": ((1,), TP.FLOAT)},
               [nh.from_array(np.asarray(4.0, np.float32), "l")], opset=13)
    m = onnx.shape_inference.infer_shapes(m)
    del m.graph.value_info[:]  # Range's length is data-dependent: state it, as intake would
    m.graph.value_info.append(h.make_tensor_value_info("r", TP.FLOAT, [5]))
    feeds = {"x": np.zeros(5, np.float32), "s1": np.asarray([-1.0], np.float32), "d1": np.asarray([1.0], np.float32)}
    assert_converts(m, feeds, rtol=0, atol=0)


@pytest.mark.parametrize("start,limit,delta,dtype", [(0, 10, 3, np.int64), (10, 1, -4, np.int32),
                                                     (1.0, -2.0, -0.7, np.float32)])
def test_range(start, limit, delta, dtype):
    inits = [nh.from_array(np.asarray(v, dtype), n) for n, v in (("s", start), ("l", limit), ("d", delta))]
    nodes = [h.make_node("Range", ["s", "l", "d"], ["r"]), h.make_node("Add", ["x", "r"], ["y"])]
    ttype = nh.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    n = max(int(np.ceil((limit - start) / delta)), 0)
    assert_converts(_model(nodes, {"x": ((n,), ttype)}, inits, opset=11))


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
@pytest.mark.parametrize("block,c", [(2, 8), (3, 18)])
def test_depth_to_space(mode, block, c):
    m = _model([h.make_node("DepthToSpace", ["x"], ["y"], blocksize=block, mode=mode)], {"x": ((2, c, 3, 4), TP.FLOAT)},
               opset=13)
    res = assert_converts(m, rtol=0, atol=0, max_transposes=0)
    assert res.stats["op_histogram"].get("GATHER", 0) == (mode == "CRD")


@pytest.mark.parametrize("op", ["DepthToSpace", "SpaceToDepth"])
@pytest.mark.parametrize("dtype", [TP.BOOL, TP.INT16])
def test_depth_space_types_without_a_kernel_are_refused(op, dtype):
    m = _model([h.make_node(op, ["x"], ["y"], blocksize=2)], {"x": ((1, 4, 4, 4), dtype)})
    with pytest.raises(UnsupportedOpsError, match="not supported by the TFLite kernel"):
        convert(onnx.shape_inference.infer_shapes(m))


@pytest.mark.parametrize("block", [2, 3])
def test_space_to_depth(block):
    m = _model([h.make_node("SpaceToDepth", ["x"], ["y"], blocksize=block)], {"x": ((2, 3, 6, 12), TP.FLOAT)})
    assert_converts(m, rtol=0, atol=0, max_transposes=0)


def test_identity_between_ops_leaves_nothing():
    m = _model([h.make_node("Relu", ["x"], ["a"]), h.make_node("Identity", ["a"], ["b"]),
                h.make_node("Neg", ["b"], ["y"])], {"x": ((2, 3), TP.FLOAT)})
    assert assert_converts(m).stats["op_histogram"] == {"RELU": 1, "NEG": 1}


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("dtype", [TP.FLOAT, TP.INT32, TP.INT64])
def test_top_k(axis, largest, dtype):
    k = 3
    m = _model([h.make_node("TopK", ["x", "k"], ["y", "i"], axis=axis, largest=largest)],
               {"x": ((4, 5, 6), dtype)}, [_i64("k", [k])], opset=11, outputs=("y", "i"))
    np_dtype = onnx.helper.tensor_dtype_to_np_dtype(dtype)
    x = RNG.permutation(120).reshape(4, 5, 6).astype(np_dtype) - 60   # distinct values: one right answer
    assert_converts(m, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("largest", [1, 0])
def test_top_k_ties_prefer_the_lower_index_and_int_extremes(largest):
    x = np.array([[3, -2**31, 3, 2**31 - 1, -2**31, 2**31 - 1, 0]], np.int32)
    m = _model([h.make_node("TopK", ["x", "k"], ["y", "i"], largest=largest)], {"x": (x.shape, TP.INT32)},
               [_i64("k", [5])], opset=11, outputs=("y", "i"))
    assert_converts(m, {"x": x}, rtol=0, atol=0)


def test_zero_sized_constant_output_is_refused_with_a_reason():
    m = _model([h.make_node("Shape", ["x"], ["y"], start=2, end=1)], {"x": ((2, 3, 4), TP.FLOAT)}, opset=15)
    with pytest.raises(UnsupportedOpsError, match="zero-sized"):
        convert(onnx.shape_inference.infer_shapes(m))


@pytest.mark.parametrize("attr,value", [("value", nh.from_array(np.arange(12, dtype=np.float32).reshape(3, 4))),
                                        ("value_float", 2.5), ("value_floats", [1.0, -2.0, 3.0, 0.5]),
                                        ("value_int", 3), ("value_ints", [4, 5, 6, 7])])
def test_surviving_constant_nodes(attr, value):
    nodes = [h.make_node("Constant", [], ["c"], **{attr: value})]
    if attr.startswith("value_int"):
        nodes.append(h.make_node("Cast", ["c"], ["cf"], to=TP.FLOAT))
    nodes.append(h.make_node("Add", ["x", "cf" if attr.startswith("value_int") else "c"], ["y"]))
    assert_converts(_model(nodes, {"x": ((3, 4), TP.FLOAT)}, opset=13), rtol=0, atol=0)


def test_string_constant_is_refused():
    m = _model([h.make_node("Constant", [], ["y"], value_string="edge")], {"x": ((1,), TP.FLOAT)}, opset=13)
    with pytest.raises(UnsupportedOpsError, match="value_string"):
        convert(m)
