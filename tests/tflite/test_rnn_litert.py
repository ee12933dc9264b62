"""LSTM / GRU / RNN through the cpu target: unrolled by the loader (the target has no converter for them),
converted, run in LiteRT and compared with onnxruntime running the original node."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgepack import targets
from edgepack.model import load_model
from edgepack.targets.tflite import convert
from tests.model.kit import save
from tests.model.rnn_kit import feeds_for, rnn_model

from .harness import run_onnx, run_tflite


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("steps,batch,bias,initial", [(1, 1, True, True), (5, 2, False, True), (5, 2, True, False)])
def test_unrolled_rnn_in_litert_equals_onnxruntime(kind, direction, steps, batch, bias, initial, tmp_path):
    original = rnn_model(kind, steps, batch, 6, 8, direction, bias=bias, initial=initial, peepholes=bias,
                         linear_before_reset=int(bias))
    loaded = load_model(save(original, tmp_path), preflight=targets.get("cpu").preflight)
    assert not {n.op_type for n in loaded.graph.node} & {"LSTM", "GRU", "RNN"}
    result = convert(loaded)
    assert "SPLIT_V" not in result.stats["op_histogram"]
    for seed in (1, 2):
        feeds = feeds_for(original, seed)
        want, got = run_onnx(original, feeds), run_tflite(result, feeds)
        for name, ref in want.items():
            assert got[name].shape == ref.shape
            np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_clipped_gates_in_litert(kind, tmp_path):
    original = rnn_model(kind, 4, 2, 6, 8, "bidirectional", peepholes=True, clip=0.7)
    result = convert(load_model(save(original, tmp_path), preflight=targets.get("cpu").preflight))
    feeds = feeds_for(original, 4)
    want, got = run_onnx(original, feeds), run_tflite(result, feeds)
    for name, ref in want.items():
        np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_silero_shaped_lstm_one_step_from_given_states(tmp_path):
    """Silero VAD's decoder: hidden 128, one step, initial h/c from inputs, only Y_h and Y_c used."""
    original = rnn_model("LSTM", 1, 1, 128, 128, outputs=("Y_h", "Y_c"), seed=5)
    loaded = load_model(save(original, tmp_path), preflight=targets.get("cpu").preflight)
    result = convert(loaded)
    assert result.stats["op_histogram"]["FULLY_CONNECTED"] == 2
    feeds = feeds_for(original, 3)
    want, got = run_onnx(original, feeds), run_tflite(result, feeds)
    assert list(want) == ["Y_h", "Y_c"]
    for name, ref in want.items():
        np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-5, err_msg=name)
    assert onnx.load(str(tmp_path / "m.onnx")).graph.node[0].op_type == "LSTM"
