"""The Silero VAD (silero-vad 6.2.3) on the cpu target: sr frozen to 16000, its LSTM unrolled into primitive
ops, run by LiteRT and compared with onnxruntime running the ORIGINAL model fed sr=16000 on speech-like audio."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from edgepack.build import build
from edgepack.cli.main import app
from edgepack.targets.base import QuantOptions
from edgepack.testing.corpus import FROZEN, fetch
from edgepack_runtime import Runtime

NAME = "vad_silero_vad.onnx"
SHAPES, VALUES = FROZEN[NAME]
HOP, CONTEXT = 512, 64


def _audio(n_chunks: int, seed: int) -> np.ndarray:
    """Voiced syllables (a gliding pitch with harmonics under a ~4 Hz envelope) over faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_chunks * HOP + CONTEXT) / 16000
    phase = 2 * np.pi * np.cumsum(rng.uniform(110, 220) * (1 + 0.1 * np.sin(2 * np.pi * t))) / 16000
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None)
    return (0.3 * voice * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _stream(n: int, seed: int) -> tuple[list[dict], list[list[np.ndarray]]]:
    """Chunks with the state the original model carried to each, and the original's outputs."""
    sess = ort.InferenceSession(str(fetch(NAME)), providers=["CPUExecutionProvider"])
    audio, state, samples, refs = _audio(n, seed), np.zeros((2, 1, 128), np.float32), [], []
    for k in range(n):
        feeds = {"input": audio[None, k * HOP:k * HOP + HOP + CONTEXT], "state": state}
        out = sess.run(None, {**feeds, "sr": np.array(16000, np.int64)})
        samples.append(feeds)
        refs.append(out)
        state = out[1]
    return samples, refs


def _npz(tmp_path, samples: list[dict]):
    path = tmp_path / "cal.npz"
    np.savez(path, input=np.stack([s["input"] for s in samples]), state=np.stack([s["state"] for s in samples]))
    return path


@pytest.mark.forked
def test_cli_build_cpu_fp32_matches_the_original_on_speech(tmp_path):
    cal, _ = _stream(16, seed=1)
    held, refs = _stream(12, seed=2)
    out = tmp_path / "vad.edgepack"
    res = CliRunner().invoke(app, ["build", str(fetch(NAME)), "--target", "cpu", "--input-shape", "input=1,576",
                                   "--input-shape", "state=2,1,128", "--input-value", "sr=16000",
                                   "--calibration", str(_npz(tmp_path, cal)), "-o", str(out)])
    assert res.exit_code == 0, res.output
    with Runtime.open(out) as rt:
        entry = rt.target
        assert rt.backend_name == "litert"
        assert entry["precision"] == "fp32" and entry["parity"]["passed"]
        assert entry["parity"]["max_rel_error"] < 1e-5
        assert [i["name"] for i in rt.inputs] == ["input", "state"]
        probs, state = [], held[0]["state"]
        for feeds, want in zip(held, refs):                     # one step, the original's state
            got = rt.run(feeds)
            np.testing.assert_allclose(got["output"], want[0], rtol=1e-5, atol=2e-6)
            np.testing.assert_allclose(got["stateN"], want[1], rtol=1e-4, atol=2e-5)
            streamed = rt.run({"input": feeds["input"], "state": state})     # its own state, carried
            probs.append(float(streamed["output"].ravel()[0]))
            state = streamed["stateN"]
    want = np.array([float(r[0].ravel()[0]) for r in refs])
    assert want.max() - want.min() > 0.3                      # speech and pauses: the probability moves
    assert np.abs(np.array(probs) - want).max() < 1e-5


@pytest.mark.forked
def test_int8_builds_and_mixed_precision_holds_the_gate(tmp_path):
    """--keep-float names an unrolled LSTM step's node (the names follow the original node's)."""
    cal, _ = _stream(24, seed=3)
    cand = "If_0_then_branch__Inline_0__/decoder/rnn/LSTM/step0/cand"
    result = build(fetch(NAME), targets=["cpu"], precision="int8", input_shapes=SHAPES, input_values=VALUES,
                   quant=QuantOptions(keep_float=(cand,)), calibration=_npz(tmp_path, cal), holdout=0.25,
                   out=tmp_path / "int8.edgepack")
    entry = result.manifest["targets"][0]
    assert entry["precision"] == "int8" and entry["parity"]["passed"], entry["parity"]
    assert {"tensor": cand, "origin": cand, "op": "TANH"} in entry["quantization"]["float_layers"]
    assert entry["info"]["size"] < 0.4 * entry["info"]["fp32_size"]
    held, refs = _stream(8, seed=4)
    with Runtime.open(result.path) as rt:
        got = np.array([float(rt.run(f)["output"].ravel()[0]) for f in held])
    want = np.array([float(r[0].ravel()[0]) for r in refs])
    assert np.abs(got - want).max() < 0.3                     # measured 0.15 on 20 chunks (benchmarks/bench_vad_cpu.py)
