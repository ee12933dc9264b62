"""An additive attention mask, ``(1 - mask) * finfo.min`` as BERT exports write it, stays float under the cpu
policy: one rounding step left on ``1 - mask`` becomes 2e34 after the multiplication and every valid token's
score minus infinity (MiniLM at int16x8: worst cosine 0.73 before, 0.999 after). Real LiteRT, real builds."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.build import build
from edgepack.model import load_model
from edgepack.targets.tflite.quant import policy
from edgepack.targets.tflite.quant.policy import additive_masks, policy_float_nodes

T, D = 8, 16


def attention(path):
    rng = np.random.default_rng(0)
    w = {k: nh.from_array(rng.normal(0, 0.4, (D, D)).astype(np.float32), k) for k in ("wq", "wk", "wv")}
    consts = [*w.values(), nh.from_array(np.array(1.0, np.float32), "one"),
              nh.from_array(np.array(np.finfo(np.float32).min, np.float32), "neg"),
              nh.from_array(np.array(4.0, np.float32), "root"), nh.from_array(np.array([1], np.int64), "ax")]
    nodes = [h.make_node("MatMul", ["x", "wq"], ["q"], name="q"), h.make_node("MatMul", ["x", "wk"], ["k"], name="k"),
             h.make_node("MatMul", ["x", "wv"], ["v"], name="v"),
             h.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="kt"),
             h.make_node("MatMul", ["q", "kt"], ["s"], name="scores"), h.make_node("Div", ["s", "root"], ["sd"], name="scale"),
             h.make_node("Unsqueeze", ["mask", "ax"], ["mu"], name="unsq"),
             h.make_node("Cast", ["mu"], ["mf"], to=TP.FLOAT, name="cast"),
             h.make_node("Sub", ["one", "mf"], ["inv"], name="invert"),
             h.make_node("Mul", ["inv", "neg"], ["add_mask"], name="minus_inf"),
             h.make_node("Add", ["sd", "add_mask"], ["masked"], name="masked"),
             h.make_node("Softmax", ["masked"], ["p"], axis=-1, name="softmax"),
             h.make_node("MatMul", ["p", "v"], ["y"], name="context")]
    g = h.make_graph(nodes, "attn", [h.make_tensor_value_info("x", TP.FLOAT, [1, T, D]),
                                     h.make_tensor_value_info("mask", TP.INT64, [1, T])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, T, D])], consts)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


def _calib(path, n=40):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 1, T, D)).astype(np.float32)
    mask = np.ones((n, 1, T), np.int64)
    for i in range(n):
        mask[i, 0, rng.integers(3, T + 1):] = 0                # padded tails of different lengths
    np.savez(path, x=x, mask=mask)
    return path


def test_the_policy_keeps_the_mask_chain_float(tmp_path):
    model = load_model(attention(tmp_path / "a.onnx"))
    assert additive_masks(model) == {"unsq", "cast", "invert", "minus_inf"}
    assert {"unsq", "cast", "invert", "minus_inf"} <= set(policy_float_nodes(model, "cpu"))
    assert policy_float_nodes(model, "strict") == []


@pytest.mark.parametrize("precision", ["int16x8", "int8"])
def test_a_masked_attention_quantizes(tmp_path, precision):
    res = build(str(attention(tmp_path / "a.onnx")), calibration=_calib(tmp_path / "c.npz"), holdout=0.3,
                precision=precision, out=tmp_path / "b.edgepack")
    p = res.manifest["targets"][0]["parity"]
    assert p["passed"] and p["min_cosine"] > 0.99 and p["max_rel_error"] < 0.1, p


def test_without_the_float_mask_int16x8_breaks(tmp_path, monkeypatch):
    """The failure the rule prevents, reproduced: the mask chain in int16 (every mask value 0 or 1)."""
    from edgepack.errors import ParityError
    from edgepack.targets.base import QuantOptions
    monkeypatch.setattr(policy, "additive_masks", lambda model: set())
    with pytest.raises(ParityError):
        build(str(attention(tmp_path / "a.onnx")), calibration=_calib(tmp_path / "c.npz"), holdout=0.3,
              precision="int16x8", out=tmp_path / "b.edgepack", quant=QuantOptions(mixed_precision=False))
