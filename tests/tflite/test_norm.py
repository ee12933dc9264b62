"""Normalization: BatchNormalization, InstanceNormalization, LayerNormalization, LRN; the affine fold pass."""
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.interpreter import Interpreter
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.targets.tflite.affine import fold_affine
from edgepack.targets.tflite.ir import Graph
from edgepack.targets.tflite.writer import serialize

from .harness import assert_converts

RNG = np.random.default_rng(5)


def _c(name, shape, positive=False):
    v = RNG.standard_normal(shape).astype(np.float32)
    return nh.from_array(np.abs(v) + 0.5 if positive else v, name)


def _model(nodes, x_shape, inits, opset=17, outputs=("y",)):
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, list(x_shape))],
                     [h.make_tensor_value_info(o, TP.FLOAT, None) for o in outputs], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _bn_inits(c):
    return [_c("s", (c,)), _c("b", (c,)), _c("m", (c,)), _c("v", (c,), positive=True)]


@pytest.mark.parametrize("shape", [(4, 6), (2, 6, 5), (1, 6, 4, 5), (1, 6, 2, 3, 4)])
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_batch_norm(shape, eps):
    node = h.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=eps)
    res = assert_converts(_model([node], shape, _bn_inits(6)))
    assert res.stats["op_histogram"] == {"MUL": 1, "ADD": 1}


def test_batch_norm_after_conv_stays_nhwc():
    nodes = [h.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]), h.make_node("Relu", ["bn"], ["y"])]
    assert_converts(_model(nodes, (1, 3, 6, 6), [_c("W", (6, 3, 3, 3))] + _bn_inits(6)), max_transposes=0)


def test_batch_norm_training_mode_is_refused():
    from edgepack.errors import UnsupportedOpsError
    from edgepack.targets.tflite import preflight
    node = h.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], training_mode=1)
    with pytest.raises(UnsupportedOpsError, match="training_mode"):
        preflight(_model([node], (2, 6, 3, 3), _bn_inits(6), opset=15))


@pytest.mark.parametrize("shape", [(2, 3, 7), (1, 3, 5, 6), (1, 2, 3, 4, 5)])
def test_instance_norm(shape):
    node = h.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3)
    assert_converts(_model([node], shape, [_c("s", (shape[1],)), _c("b", (shape[1],))]), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,axis", [((4, 8), -1), ((2, 5, 8), -1), ((2, 5, 8), 1), ((2, 3, 4, 5), 2),
                                        ((2, 3, 4, 5), 0)])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm(shape, axis, bias):
    norm = shape[axis % len(shape):]
    ins = ["x", "g"] + (["beta"] if bias else [])
    inits = [_c("g", norm)] + ([_c("beta", norm)] if bias else [])
    node = h.make_node("LayerNormalization", ins, ["y"], axis=axis, epsilon=1e-4)
    assert_converts(_model([node], shape, inits), rtol=1e-4, atol=1e-4)


def test_layer_norm_statistics_outputs():
    node = h.make_node("LayerNormalization", ["x", "g", "beta"], ["y", "mean", "inv"], axis=1)
    m = _model([node], (3, 4, 5), [_c("g", (4, 5)), _c("beta", (4, 5))], outputs=("y", "mean", "inv"))
    assert_converts(m, rtol=1e-4, atol=1e-4)


def _lrn_spec(x, size, alpha, beta, bias):
    """The ONNX definition: channels [c - floor((size-1)/2), c + ceil((size-1)/2)], alpha averaged by size.
    (onnxruntime only runs odd sizes on 4-D tensors.)"""
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = x.astype(np.float64) ** 2
    total = np.stack([sq[:, max(0, c - lo):c + hi + 1].sum(axis=1) for c in range(x.shape[1])], axis=1)
    return (x / (bias + alpha / size * total) ** beta).astype(np.float32)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("alpha,beta,bias", [(1e-4, 0.75, 1.0), (0.5, 0.6, 2.0)])
@pytest.mark.parametrize("shape", [(1, 7, 4, 5), (2, 6, 5), (1, 6, 2, 3, 4)])
def test_lrn(size, alpha, beta, bias, shape):
    import onnx

    from edgepack.targets.tflite import convert

    from .harness import run_tflite
    m = _model([h.make_node("LRN", ["x"], ["y"], size=size, alpha=alpha, beta=beta, bias=bias)], shape, [])
    res = convert(onnx.shape_inference.infer_shapes(m))
    x = RNG.standard_normal(shape).astype(np.float32) * 2
    np.testing.assert_allclose(run_tflite(res, {"x": x})["y"], _lrn_spec(x, size, alpha, beta, bias),
                               rtol=1e-5, atol=1e-6)
    assert res.stats["transpose_count"] == 0
    native = "LOCAL_RESPONSE_NORMALIZATION" in res.stats["op_histogram"]
    assert native == (size % 2 == 1 and len(shape) == 4)


def test_lrn_matches_onnxruntime():
    node = h.make_node("LRN", ["x"], ["y"], size=5, alpha=1e-3, beta=0.75, bias=2.0)
    assert_converts(_model([node], (1, 8, 4, 5), []), rtol=1e-5, atol=1e-6)


def test_lrn_spec_oracle_agrees_with_onnxruntime():
    import onnxruntime as ort
    m = _model([h.make_node("LRN", ["x"], ["y"], size=3, alpha=0.3, beta=0.7, bias=1.5)], (1, 5, 2, 2), [])
    x = RNG.standard_normal((1, 5, 2, 2)).astype(np.float32)
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(_lrn_spec(x, 3, 0.3, 0.7, 1.5), want, rtol=1e-5)


# --- fold_affine: per-channel MUL/ADD folded into the producing conv / FC (an IR pass) ----------------------
def _run(graph: Graph, x: np.ndarray) -> np.ndarray:
    it = Interpreter(model_content=serialize(graph))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _conv_graph(opcode: str, with_bias: bool, const_first: bool) -> Graph:
    g = Graph()
    x = g.add("x", (1, 5, 5, 3), np.float32)
    g.inputs.append(x)
    if opcode == "CONV_2D":
        w, opts, cout = RNG.standard_normal((4, 3, 3, 3)), fb.Conv2DOptionsT(), 4
    elif opcode == "DEPTHWISE_CONV_2D":
        w, opts, cout = RNG.standard_normal((1, 3, 3, 6)), fb.DepthwiseConv2DOptionsT(), 6
        opts.depthMultiplier = 2
    else:
        w, opts, cout = RNG.standard_normal((4, 75)), fb.FullyConnectedOptionsT(), 4
    if opcode != "FULLY_CONNECTED":
        opts.padding, opts.strideH, opts.strideW = fb.Padding.SAME, 1, 1
        opts.dilationHFactor = opts.dilationWFactor = 1
    src = x
    if opcode == "FULLY_CONNECTED":
        src = g.add("flat", (1, 75), np.float32)
        ropts = fb.ReshapeOptionsT()
        ropts.newShape = [1, 75]
        g.op("RESHAPE", [x, g.const(np.asarray([1, 75], np.int32))], [src], ropts)
    out_shape = (1, 5, 5, cout) if opcode != "FULLY_CONNECTED" else (1, cout)
    bias = g.const(RNG.standard_normal(cout).astype(np.float32), "b") if with_bias else None
    c = g.add("c", out_shape, np.float32)
    g.op(opcode, [src, g.const(w.astype(np.float32), "w"), bias], [c], opts)
    scale = g.const(RNG.standard_normal((1,) * (len(out_shape) - 1) + (cout,)).astype(np.float32), "scale")
    shift = g.const(RNG.standard_normal(cout).astype(np.float32), "shift")
    m, y = g.add("m", out_shape, np.float32), g.add("y", out_shape, np.float32)
    g.op("MUL", [scale, c] if const_first else [c, scale], [m], fb.MulOptionsT())
    g.op("ADD", [m, shift], [y], fb.AddOptionsT())
    g.outputs.append(y)
    return g


@pytest.mark.parametrize("opcode,with_bias,const_first", [
    ("CONV_2D", True, False), ("CONV_2D", True, True), ("DEPTHWISE_CONV_2D", True, True),
    ("FULLY_CONNECTED", True, False), ("FULLY_CONNECTED", False, True),
])
def test_fold_affine_into_producer(opcode, with_bias, const_first):
    x = RNG.standard_normal((1, 5, 5, 3)).astype(np.float32)
    g = _conv_graph(opcode, with_bias, const_first)
    before = _run(g, x)
    assert fold_affine(g) == 2
    assert [op.opcode for op in g.ops if op.opcode != "RESHAPE"] == [opcode]
    np.testing.assert_allclose(_run(g, x), before, rtol=1e-5, atol=1e-5)


def test_fold_affine_leaves_shared_outputs_and_spatial_constants():
    g = _conv_graph("CONV_2D", True, False)
    g.ops[-1].inputs[1] = g.const(RNG.standard_normal((1, 5, 5, 4)).astype(np.float32), "spatial")
    g.outputs.append("c")     # the conv output is also a graph output: MUL cannot be folded
    assert fold_affine(g) == 0
