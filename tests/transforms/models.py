"""Small synthetic models for the transform tests (loaded through ``load_model`` like a build does)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.model import load_model


def _arr(name, a):
    return nh.from_array(np.asarray(a, np.float32), name)


def _load(tmp_path, name, nodes, inits, inputs, outputs):
    g = h.make_graph(nodes, name, [h.make_tensor_value_info(n, TP.FLOAT, s) for n, s in inputs],
                     [h.make_tensor_value_info(n, TP.FLOAT, s) for n, s in outputs], inits)
    path = tmp_path / f"{name}.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return load_model(path)


def spread_depthwise(tmp_path, spread=(1e-2, 4.0), seed=0, act="Relu"):
    """Conv(3x3, 16) -> BN -> Relu -> depthwise 3x3 -> Relu -> Conv 1x1: the BN scales output channels over
    ``spread`` and the depthwise conv divides it back, so the function is ordinary but one int8 range for
    the first activation leaves the small channels a few levels (MobileNet after BN folding)."""
    rng = np.random.default_rng(seed)
    c = 16
    k = np.geomspace(*spread, c)[rng.permutation(c)]
    inits = [_arr("w1", rng.standard_normal((c, 8, 3, 3)) * 0.2), _arr("b1", rng.standard_normal(c) * 0.1),
             _arr("g", k), _arr("beta", 0.05 * k), _arr("mu", np.zeros(c)), _arr("var", np.ones(c)),
             _arr("w2", rng.standard_normal((c, 1, 3, 3)) / k[:, None, None, None] * 0.3),
             _arr("b2", rng.standard_normal(c) * 0.1), _arr("w3", rng.standard_normal((8, c, 1, 1)) * 0.3)]
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1] * 4),
             h.make_node("BatchNormalization", ["c1", "g", "beta", "mu", "var"], ["n1"]),
             h.make_node(act, ["n1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1] * 4, group=c),
             h.make_node("Relu", ["c2"], ["r2"]), h.make_node("Conv", ["r2", "w3"], ["y"])]
    return _load(tmp_path, "spread_dw", nodes, inits, [("x", [1, 8, 12, 12])], [("y", [1, 8, 12, 12])])


def leaky_max_chain(tmp_path, seed=1):
    """Conv -> LeakyRelu -> Max(-0.4) -> Conv -> LeakyRelu -> Max(-0.4) -> Conv (openwakeword's pattern,
    one shared constant), channels spread so equalization has work to do."""
    rng = np.random.default_rng(seed)
    k = np.geomspace(0.05, 5.0, 12)
    inits = [_arr("w1", rng.standard_normal((12, 4, 3, 3)) * k[:, None, None, None]),
             _arr("w2", rng.standard_normal((12, 12, 3, 3)) * 0.2), _arr("b2", rng.standard_normal(12) * 0.1),
             _arr("w3", rng.standard_normal((6, 12, 1, 1)) * 0.3), _arr("floor", np.full((1, 1, 1, 1), -0.4))]
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], pads=[1] * 4),
             h.make_node("LeakyRelu", ["c1"], ["l1"], alpha=0.2), h.make_node("Max", ["l1", "floor"], ["m1"]),
             h.make_node("Conv", ["m1", "w2", "b2"], ["c2"], pads=[1] * 4),
             h.make_node("LeakyRelu", ["c2"], ["l2"], alpha=0.2), h.make_node("Max", ["l2", "floor"], ["m2"]),
             h.make_node("Conv", ["m2", "w3"], ["y"])]
    return _load(tmp_path, "leaky_max", nodes, inits, [("x", [1, 4, 10, 10])], [("y", [1, 6, 10, 10])])


def outlier_layernorm(tmp_path, outliers=(3, 17, 40), gain=40.0, seed=2):
    """LayerNorm whose scale makes a few channels ``gain`` times larger, feeding two MatMul + bias layers
    and a residual Add (so the LayerNorm must be duplicated to absorb the smoothing)."""
    rng = np.random.default_rng(seed)
    d = 64
    gamma = np.ones(d)
    gamma[list(outliers)] = gain
    inits = [_arr("gamma", gamma), _arr("beta", rng.standard_normal(d) * 0.1),
             _arr("wq", rng.standard_normal((d, d)) * 0.1), _arr("bq", rng.standard_normal(d) * 0.1),
             _arr("wk", rng.standard_normal((d, 32)) * 0.1), _arr("bk", rng.standard_normal(32) * 0.1)]
    nodes = [h.make_node("LayerNormalization", ["x", "gamma", "beta"], ["ln"], axis=-1),
             h.make_node("MatMul", ["ln", "wq"], ["q"]), h.make_node("Add", ["q", "bq"], ["yq"]),
             h.make_node("MatMul", ["ln", "wk"], ["k"]), h.make_node("Add", ["k", "bk"], ["yk"]),
             h.make_node("Add", ["ln", "x"], ["res"])]
    return _load(tmp_path, "outlier_ln", nodes, inits, [("x", [1, 16, d])], [("yq", [1, 16, d]), ("yk", [1, 16, 32]), ("res", [1, 16, d])])


def jax_norm_head(tmp_path, seed=4, offset=6.0):
    """MatMul -> layer norm -> MatMul -> softmax, both spelled out as jax2tf writes them (magika's head):
    variance as ``max(E[x^2] - E[x]^2, 0)``, softmax as ``Exp(x - ReduceMax) / ReduceSum``. The first
    MatMul's bias gives every row a mean of about ``offset``, so ``E[x^2]`` and ``E[x]^2`` nearly cancel."""
    rng = np.random.default_rng(seed)
    d, k = 48, 40
    inits = [_arr("w1", rng.standard_normal((d, d)) * 0.15), _arr("b1", offset + rng.standard_normal(d) * 0.2),
             _arr("invn", 1.0 / d), _arr("zero", 0.0), _arr("eps", 1e-6), _arr("gamma", rng.uniform(0.5, 2, d)),
             _arr("beta", rng.standard_normal(d) * 0.1), _arr("w2", rng.standard_normal((d, k)) * 0.4),
             nh.from_array(np.array([-1], np.int64), "ax")]
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m1"]), h.make_node("Add", ["m1", "b1"], ["h"]),
             h.make_node("ReduceSum", ["h", "ax"], ["s"], keepdims=1), h.make_node("Mul", ["s", "invn"], ["mean"]),
             h.make_node("Mul", ["h", "h"], ["sq"]), h.make_node("ReduceSum", ["sq", "ax"], ["s2"], keepdims=1),
             h.make_node("Mul", ["s2", "invn"], ["ex2"]), h.make_node("Mul", ["mean", "mean"], ["m2"]),
             h.make_node("Sub", ["ex2", "m2"], ["var0"]), h.make_node("Max", ["var0", "zero"], ["var"]),
             h.make_node("Add", ["var", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["sd"]),
             h.make_node("Reciprocal", ["sd"], ["inv"]), h.make_node("Mul", ["inv", "gamma"], ["scale"]),
             h.make_node("Sub", ["h", "mean"], ["xc"]), h.make_node("Mul", ["xc", "scale"], ["n"]),
             h.make_node("Add", ["n", "beta"], ["ln"]), h.make_node("MatMul", ["ln", "w2"], ["logits"]),
             h.make_node("ReduceMax", ["logits"], ["mx"], axes=[-1], keepdims=1),
             h.make_node("Sub", ["logits", "mx"], ["dl"]), h.make_node("Exp", ["dl"], ["e"]),
             h.make_node("ReduceSum", ["e", "ax"], ["se"], keepdims=1), h.make_node("Div", ["e", "se"], ["p"])]
    return _load(tmp_path, "jax_norm_head", nodes, inits, [("x", [1, 8, d])], [("p", [1, 8, k])])


def positive_input_conv(tmp_path, seed=3):
    """A wide Conv on inputs with a large positive mean: int8 weight rounding shifts each output channel."""
    rng = np.random.default_rng(seed)
    inits = [_arr("w", rng.standard_normal((16, 64, 3, 3)) * 0.05), _arr("b", np.zeros(16)),
             _arr("wf", rng.standard_normal((16, 10)) * 0.2), _arr("bf", np.zeros(10))]
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1] * 4),
             h.make_node("GlobalAveragePool", ["y"], ["p"]), h.make_node("Flatten", ["p"], ["f"]),
             h.make_node("MatMul", ["f", "wf"], ["m"]), h.make_node("Add", ["m", "bf"], ["z"])]
    return _load(tmp_path, "positive_conv", nodes, inits, [("x", [1, 64, 8, 8])], [("y", [1, 16, 8, 8]), ("z", [1, 10])])


def samples(model, n, seed=0, mean=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        feeds = {}
        for i in model.graph.input:
            shape = [d.dim_value for d in i.type.tensor_type.shape.dim]
            feeds[i.name] = (mean + scale * rng.standard_normal(shape)).astype(np.float32)
        out.append(feeds)
    return out
