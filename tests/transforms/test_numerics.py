"""Each transform on its own, in onnxruntime: the float function kept (CLE, smoothing), the weight ranges
evened out, the int8-weight mean error removed (bias correction). Numbers, no mocks."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepack.errors import EdgepackError
from edgepack.model.ort import reference_outputs
from edgepack.testing.corpus import INPUT_SHAPES, fetch
from edgepack.model import load_model
from edgepack.transforms import ORDER, apply, parse
from edgepack.transforms.cle import pairs, spread
from edgepack.transforms.graph import Graph
from edgepack.transforms.stats import fake_quant_weight

from .models import jax_norm_head, leaky_max_chain, outlier_layernorm, positive_input_conv, samples, spread_depthwise

ONLY = {name: {**{n: "off" for n in ORDER}, name: "on"} for name in ORDER}


def _info(record: dict, name: str) -> dict:
    return next(t for t in record["tried"] if t["name"] == name)["info"]


def _max_rel(a: list[dict], b: list[dict]) -> float:
    return max(float(np.abs(x[k] - y[k]).max() / np.abs(y[k]).max()) for x, y in zip(a, b) for k in y)


@pytest.mark.parametrize("make,name", [(spread_depthwise, "cle"), (leaky_max_chain, "cle"),
                                       (outlier_layernorm, "smooth"), (jax_norm_head, "norms")])
def test_float_function_kept(tmp_path, make, name):
    model = make(tmp_path)
    before = onnx.ModelProto()
    before.CopyFrom(model)
    data = samples(model, 12)
    out, record = apply(model, data[:8], ONLY[name])
    assert record["kept"] == [name]
    assert model == before                                     # the input model is not edited
    assert _max_rel(reference_outputs(out, data[8:]), reference_outputs(model, data[8:])) < 1e-4


def test_cle_evens_the_ranges(tmp_path):
    model = spread_depthwise(tmp_path)
    out, record = apply(model, [], ONLY["cle"])
    info = _info(record, "cle")
    assert info["batchnorm_folded"] == 1 and info["pairs"] == 2 and info["through"] == ["Relu"]
    g = Graph(out)
    first = [n for n in g.g.node if n.op_type == "Conv"][0]
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    from edgepack.transforms.graph import fold_batchnorm
    fold_batchnorm(folded)
    before = spread(Graph(folded), [n for n in folded.graph.node if n.op_type == "Conv"][0])
    after = spread(g, first)
    assert before > 100 and after < before / 20, (before, after)


def test_cle_scales_a_shared_max_constant_per_channel(tmp_path):
    model = leaky_max_chain(tmp_path)
    out, record = apply(model, [], ONLY["cle"])
    assert _info(record, "cle")["through"] == ["LeakyRelu", "Max"]
    inits = {t.name: t for t in out.graph.initializer}
    bounds = [inits[n.input[1]] for n in out.graph.node if n.op_type == "Max"]
    assert len({t.name for t in bounds}) == 2 and all(list(t.dims) == [1, 12, 1, 1] for t in bounds)


def test_cle_real_model(tmp_path):
    name = "audio_oww_embedding_model.onnx"
    model = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
    assert len(pairs(Graph(model))) == 14
    data = samples(model, 3, mean=2.0)
    out, record = apply(model, [], ONLY["cle"])
    assert record["kept"] == ["cle"]
    assert _max_rel(reference_outputs(out, data), reference_outputs(model, data)) < 1e-4


def test_smooth_duplicates_a_shared_layernorm_and_moves_the_outliers(tmp_path):
    model = outlier_layernorm(tmp_path)
    out, record = apply(model, samples(model, 8), ONLY["smooth"])
    group = _info(record, "smooth")["groups"][0]
    assert group["duplicated"] and group["alpha"] is not None
    assert group["simulated_error"][str(group["alpha"])] < 0.5 * group["simulated_error"]["none"]
    lns = [n for n in out.graph.node if n.op_type == "LayerNormalization"]
    assert len(lns) == 2
    gamma = {t.name: onnx.numpy_helper.to_array(t) for t in out.graph.initializer}[lns[1].input[1]]
    assert gamma.max() / gamma.min() < 40 / 3                  # the outlier channels moved into the weights


def _int8_weights(m):
    """``m`` with every Conv / MatMul weight rounded as the int8 targets store them, float elsewhere."""
    q = onnx.ModelProto()
    q.CopyFrom(m)
    for node in q.graph.node:
        if node.op_type in ("Conv", "MatMul"):
            t = next(t for t in q.graph.initializer if t.name == node.input[1])
            axis = 0 if node.op_type == "Conv" else 1
            t.CopyFrom(onnx.numpy_helper.from_array(fake_quant_weight(onnx.numpy_helper.to_array(t), axis), t.name))
    return q


def test_bias_correction_removes_the_mean_error(tmp_path):
    model = positive_input_conv(tmp_path)
    calib, held = samples(model, 16, seed=1, mean=3.0), samples(model, 8, seed=2, mean=3.0)
    out, record = apply(model, calib, ONLY["bias_correction"])
    assert _info(record, "bias_correction")["layers"] == 2
    ref = reference_outputs(model, held)

    def mean_error(m):
        got = reference_outputs(_int8_weights(m), held)
        err = np.stack([g["y"] - r["y"] for g, r in zip(got, ref)])
        return float(np.abs(err.mean(axis=(0, 2, 3, 4))).mean())

    before, after = mean_error(model), mean_error(out)
    assert before > 1e-4 and after < 0.25 * before, (before, after)


def test_parse_settings():
    assert parse(["cle=off", "bias=on"]) == {"cle": "off", "bias_correction": "on"}
    assert parse(["all=off", "smooth=auto"]) == {"norms": "off", "cle": "off", "smooth": "auto", "adaround": "off", "sum_round": "off",
                                                 "bias_correction": "off"}
    assert parse(["fuse_norms=on"]) == {"norms": "on"}
    for bad in ("cle", "cle=maybe", "fancy=on"):
        with pytest.raises(EdgepackError, match="NAME=MODE"):
            parse([bad])



def test_per_channel_mul_add_after_a_conv_is_folded(tmp_path):
    from onnx import TensorProto as TP
    from onnx import helper as h
    rng = np.random.default_rng(4)
    inits = [onnx.numpy_helper.from_array(a.astype(np.float32), n) for n, a in (
        ("w", rng.standard_normal((6, 3, 3, 3))), ("s", np.array([0.7])), ("a", rng.standard_normal((6, 1, 1))))]
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4), h.make_node("Mul", ["s", "c"], ["m"]),
             h.make_node("Add", ["m", "a"], ["y"])]
    g = h.make_graph(nodes, "affine", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 6, 8, 8])], inits)
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    from edgepack.transforms.graph import fold_batchnorm
    assert fold_batchnorm(folded) == 2 and [n.op_type for n in folded.graph.node] == ["Conv"]
    data = samples(model, 2)
    assert _max_rel(reference_outputs(folded, data), reference_outputs(model, data)) < 1e-5


# --- sum_round: int8 weight rounding that keeps each spatial kernel's sum ----------------------------------

@settings(max_examples=60, deadline=None)
@given(o=st.integers(1, 9), g=st.integers(1, 5), k=st.sampled_from([4, 9, 25]), seed=st.integers(0, 2**16),
       spread=st.floats(0.01, 100.0))
def test_round_keeping_sums_stays_on_the_grid_and_keeps_every_sum(o, g, k, seed, spread):
    from edgepack.transforms.sumround import round_keeping_sums
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((o, g, k)) * spread ** rng.uniform(-1, 1, (o, 1, 1))).astype(np.float32)
    q = round_keeping_sums(w)
    step = np.abs(w).max(axis=(1, 2), keepdims=True) / 127.0
    units = q / step
    assert np.abs(units - np.round(units)).max() < 1e-3 and np.abs(units).max() <= 127 + 1e-3   # on the grid
    np.testing.assert_allclose(np.abs(q).max(axis=(1, 2)), np.abs(w).max(axis=(1, 2)), rtol=1e-6)  # same scale
    assert np.abs((q - w).sum(axis=2) / step[..., 0]).max() <= 0.5 + 1e-3      # every kernel's sum, to half a step
    assert np.abs((q - w) / step).max() < 1.5                                   # no weight far from its value


def test_sum_round_keeps_a_high_pass_kernel_on_a_bright_input(tmp_path):
    """A depthwise 3x3 edge detector (large weights summing to ~0) on an input with a large constant part:
    nearest rounding shifts the output by the kernel-sum error times the level; sum_round does not. 1x1
    convolutions are left alone."""
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper as nh

    from edgepack.transforms.stats import fake_quant_weight
    rng = np.random.default_rng(7)
    c = 16
    w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32) * 3
    w -= w.mean(axis=(1, 2, 3), keepdims=True)                                  # sums ~0
    w1 = rng.standard_normal((8, c, 1, 1)).astype(np.float32)
    g = h.make_graph([h.make_node("Conv", ["x", "w"], ["d"], group=c),
                      h.make_node("Conv", ["d", "w1"], ["y"])], "hp",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, c, 12, 12])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 8, 10, 10])],
                     [nh.from_array(w, "w"), nh.from_array(w1, "w1")])
    path = tmp_path / "hp.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    model = load_model(path)
    data = [{"x": (20.0 + 0.05 * rng.standard_normal((1, c, 12, 12))).astype(np.float32)} for _ in range(4)]
    out, record = apply(model, [], ONLY["sum_round"])
    info = _info(record, "sum_round")
    assert record["kept"] == ["sum_round"] and info["layers"] == 1 and info["weights_moved"] > 0
    inits = {t.name: nh.to_array(t) for t in out.graph.initializer}
    np.testing.assert_array_equal(inits["w1"], w1)                              # the 1x1 conv: untouched
    nearest = onnx.ModelProto()
    nearest.CopyFrom(model)
    for t in nearest.graph.initializer:
        if t.name == "w":
            t.CopyFrom(nh.from_array(fake_quant_weight(w, 0), "w"))
    ref = reference_outputs(model, data)
    err_nearest = _max_rel(reference_outputs(nearest, data), ref)
    err_sum = _max_rel(reference_outputs(out, data), ref)
    assert err_sum < err_nearest / 3, (err_nearest, err_sum)
