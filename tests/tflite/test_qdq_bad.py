"""Quantized models the cpu target cannot carry as they are: weight scales on an axis TFLite does not
quantize, blocked or 16-bit quantization, 4-bit weights, 16-bit activations, a quantized graph input. Each
gets a documented float fallback (named in the manifest with its reason) or a clear error."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgepack.build import build
from edgepack.errors import UnsupportedOpsError
from tests.tflite.qdq_models import conv_net, hand_qdq, quantized

pytestmark = pytest.mark.forked


def _build(path, precision, tmp_path, shape):
    rng = np.random.default_rng(2)
    samples = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(6)]
    res = build(path, targets=["cpu"], precision=precision, samples=samples, out=tmp_path / f"{precision}.edgepack")
    return res.manifest["targets"][0]


def _hand(kind, tmp_path):
    path = tmp_path / f"{kind}.onnx"
    onnx.save(hand_qdq(kind), str(path))
    return path


@pytest.mark.parametrize("kind,shape,node,why", [
    ("wrong_axis", [1, 8, 6], "MatMul", "per-channel weight scales on axis 0; TFLite quantizes MatMul weights per "
                                        "output channel (axis 1 of the ONNX weight)"),
    ("blocked", [1, 6, 8, 8], "Conv", "blocked (per-block) weight scales"),
])
def test_weights_tflite_cannot_take_keep_their_node_in_float(tmp_path, kind, shape, node, why):
    path = _hand(kind, tmp_path)
    cpu = _build(path, "int8", tmp_path, shape)
    model = cpu["quantization"]["model"]
    assert [f["node"].split("_")[0] for f in model["float_nodes"]] == [node]
    assert why in model["float_nodes"][0]["why"]
    assert model["weight_scales_used"] == 0 and cpu["parity"]["passed"]
    assert {"CONV_2D", "FULLY_CONNECTED"} & set(cpu["quantization"]["float_opcodes"])
    assert _build(path, "fp32", tmp_path, shape)["parity"]["passed"]          # float needs no int8 grid


@pytest.mark.parametrize("kind", ["int8", "int4", "uint4"])
def test_8_and_4_bit_weights_are_carried_exactly_in_int8(tmp_path, kind):
    cpu = _build(_hand(kind, tmp_path), "int8", tmp_path, [1, 6, 8, 8])
    model = cpu["quantization"]["model"]
    assert model["float_nodes"] == [] and model["weight_scales_used"] == 1
    assert cpu["quantization"]["float_opcodes"] == []
    # the model's own int8 computation, reproduced: onnxruntime and LiteRT agree to the last step
    assert cpu["parity"]["passed"] and cpu["parity"]["max_rel_error"] < 1e-6, cpu["parity"]


def test_16_bit_activations_run_in_float_between_int8_weights(tmp_path):
    path = quantized(conv_net(), tmp_path, activations="QInt16")
    cpu = _build(path, "int8", tmp_path, [1, 3, 16, 16])
    model = cpu["quantization"]["model"]
    assert model["activation_types_not_int8"] == ["int16"] and model["activation_ranges"] == 0
    assert cpu["quantization"]["int8_ops"] == 0 and cpu["parity"]["passed"]
    fp32 = _build(path, "fp32", tmp_path, [1, 3, 16, 16])
    assert fp32["parity"]["passed"] and fp32["info"]["dequantized"]["left"] == 0


def test_a_quantized_graph_input_is_refused_with_what_to_do(tmp_path):
    with pytest.raises(UnsupportedOpsError) as err:
        build(_hand("input", tmp_path), targets=["cpu"], precision="fp32", out=tmp_path / "b.edgepack")
    text = str(err.value)
    assert "DequantizeLinear" in text and "the model's input is quantized" in text and "float input" in text
