"""Decomposed layer norms and softmaxes are found by what they compute and become one op (real onnxruntime)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.model.fuse_norms import fuse


def _model(nodes, inits, shape, outputs, opset=17):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
                     [h.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs],
                     [nh.from_array(np.asarray(v), k) for k, v in inits.items()])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _run(m, x):
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})


def _jax_layernorm(prefix="ln", x="x", out="y", c=8):
    """The jax2tf spelling: mean = sum * 1/N, var = max(E[x^2] - mean^2, 0), 1/sqrt(var + eps) * gamma."""
    p = prefix
    rng = np.random.default_rng(1)
    nodes = [h.make_node("ReduceSum", [x, f"{p}_ax"], [f"{p}_s"], keepdims=1),
             h.make_node("Mul", [f"{p}_s", f"{p}_invn"], [f"{p}_mean"]),
             h.make_node("Mul", [x, x], [f"{p}_sq"]),
             h.make_node("ReduceSum", [f"{p}_sq", f"{p}_ax"], [f"{p}_s2"], keepdims=1),
             h.make_node("Mul", [f"{p}_s2", f"{p}_invn"], [f"{p}_ex2"]),
             h.make_node("Mul", [f"{p}_mean", f"{p}_mean"], [f"{p}_m2"]),
             h.make_node("Sub", [f"{p}_ex2", f"{p}_m2"], [f"{p}_var0"]),
             h.make_node("Max", [f"{p}_var0", f"{p}_zero"], [f"{p}_var"]),
             h.make_node("Add", [f"{p}_var", f"{p}_eps"], [f"{p}_ve"]),
             h.make_node("Sqrt", [f"{p}_ve"], [f"{p}_sd"]),
             h.make_node("Reciprocal", [f"{p}_sd"], [f"{p}_inv"]),
             h.make_node("Mul", [f"{p}_inv", f"{p}_gamma"], [f"{p}_scale"]),
             h.make_node("Sub", [x, f"{p}_mean"], [f"{p}_xc"]),
             h.make_node("Mul", [f"{p}_xc", f"{p}_scale"], [f"{p}_n"]),
             h.make_node("Add", [f"{p}_n", f"{p}_beta"], [out])]
    inits = {f"{p}_ax": np.array([-1], np.int64), f"{p}_invn": np.array(1.0 / c, np.float32),
             f"{p}_zero": np.array(0.0, np.float32), f"{p}_eps": np.array(1e-6, np.float32),
             f"{p}_gamma": rng.uniform(0.5, 2, c).astype(np.float32), f"{p}_beta": rng.normal(size=c).astype(np.float32)}
    return nodes, inits


def _softmax_nodes(x="x", out="p"):
    nodes = [h.make_node("ReduceMax", [x], ["mx"], axes=[-1], keepdims=1),
             h.make_node("Sub", [x, "mx"], ["d"]), h.make_node("Exp", ["d"], ["e"]),
             h.make_node("ReduceSum", ["e", "ax1"], ["se"], keepdims=1), h.make_node("Div", ["e", "se"], [out])]
    return nodes, {"ax1": np.array([-1], np.int64)}


def test_a_jax2tf_layer_norm_becomes_one_layernormalization_with_the_same_outputs():
    nodes, inits = _jax_layernorm()
    nodes.append(h.make_node("Relu", ["y"], ["r"]))        # what follows is not part of it
    m = _model(nodes, inits, [2, 5, 8], ["r"])
    x = (np.random.default_rng(0).normal(size=(2, 5, 8)) * 3 + 40).astype(np.float32)   # a large common offset
    before = _run(m, x)[0]
    fused_model, fused = fuse(m)
    assert [f["kind"] for f in fused] == ["LayerNormalization"] and fused[0]["nodes"] == 15
    assert [n.op_type for n in fused_model.graph.node] == ["LayerNormalization", "Relu"]
    ln = fused_model.graph.node[0]
    assert abs(h.get_attribute_value(next(a for a in ln.attribute if a.name == "epsilon")) - 1e-6) < 1e-12
    np.testing.assert_allclose(_run(fused_model, x)[0], before, rtol=1e-4, atol=1e-4)


def test_a_decomposed_softmax_becomes_softmax_at_any_opset():
    nodes, inits = _softmax_nodes()
    m = _model(nodes, inits, [3, 10], ["p"], opset=13)
    x = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32) * 4
    fused_model, fused = fuse(m, allow_opset_upgrade=False)
    assert [f["kind"] for f in fused] == ["Softmax"]
    assert [n.op_type for n in fused_model.graph.node] == ["Softmax"]
    np.testing.assert_allclose(_run(fused_model, x)[0], _run(m, x)[0], rtol=1e-5, atol=1e-6)


def test_a_layer_norm_below_opset_17_is_fused_only_when_the_opset_may_be_raised():
    nodes, inits = _jax_layernorm()
    m = _model(nodes, inits, [4, 8], ["y"], opset=15)
    kept, none = fuse(m, allow_opset_upgrade=False)
    assert none == [] and len(kept.graph.node) == 15
    raised, fused = fuse(m)
    assert [f["kind"] for f in fused] == ["LayerNormalization"]
    assert max(o.version for o in raised.opset_import if o.domain in ("", "ai.onnx")) >= 17


def test_nothing_is_fused_when_a_piece_is_read_outside_or_the_math_differs():
    nodes, inits = _jax_layernorm()
    leak = _model(nodes + [h.make_node("Identity", ["ln_mean"], ["mean_out"])], inits, [4, 8], ["y", "mean_out"])
    assert fuse(leak)[1] == []                               # the mean is a graph output: it must stay
    centred = _model([h.make_node("ReduceMean", ["x"], ["m"], axes=[-1], keepdims=1),
                      h.make_node("Sub", ["x", "m"], ["y"])], {}, [4, 8], ["y"])
    assert fuse(centred)[1] == []                            # x - mean is not a layer norm
    nodes, inits = _softmax_nodes()
    nodes[2] = h.make_node("Abs", ["d"], ["e"])              # |x - max| / sum: not a softmax
    assert fuse(_model(nodes, inits, [3, 10], ["p"]))[1] == []


def test_the_real_byte_classifier_gets_its_two_layer_norms_and_softmax_fused():
    from edgepack.model import load_model
    from edgepack.testing.corpus import INPUT_SHAPES, fetch
    name = "bytes_magika_standard_v3_3.onnx"
    m = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
    inp = m.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    feed = {inp.name: rng.integers(0, 257, size=shape).astype(np.int32 if inp.type.tensor_type.elem_type ==
                                                                  onnx.TensorProto.INT32 else np.int64)}
    sess = lambda mm: ort.InferenceSession(mm.SerializeToString(), providers=["CPUExecutionProvider"])  # noqa: E731
    before = sess(m).run(None, feed)[0]
    fused_model, fused = fuse(m)
    assert sorted(f["kind"] for f in fused) == ["LayerNormalization", "LayerNormalization", "Softmax"]
    after = sess(fused_model).run(None, feed)[0]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5)
    assert len(fused_model.graph.node) < len(m.graph.node) - 25
