"""--input-value on a real model: the Silero VAD (silero-vad 6.2.3 wheel), whose int64 sample-rate input `sr`
picks one of two If branches (each holding nested Ifs on shapes and an LSTM)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from edgepack.build import build
from edgepack.cli.main import app
from edgepack.errors import UnsupportedOpsError
from edgepack.model import load_model
from edgepack.testing.corpus import FROZEN, fetch
from edgepack_runtime import Runtime

NAME = "vad_silero_vad.onnx"
SHAPES, VALUES = FROZEN[NAME]


def _feeds(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(576) / 16000
    voice = 0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return {"input": (voice + 0.02 * rng.standard_normal(576)).astype(np.float32)[None],
            "state": (0.1 * rng.standard_normal((2, 1, 128))).astype(np.float32)}


def _original(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(fetch(NAME)), providers=["CPUExecutionProvider"])
    return sess.run(None, {**feeds, "sr": np.array(16000, np.int64)})


@pytest.mark.forked
def test_frozen_vad_builds_and_matches_the_original_fed_16k(tmp_path):
    samples = [_feeds(s) for s in range(6)]
    result = build(fetch(NAME), targets=["onnx"], input_shapes=SHAPES, input_values=VALUES, samples=samples,
                   out=tmp_path / "vad.edgepack")
    m = result.manifest
    assert [i["name"] for i in m["inputs"]] == ["input", "state"]
    assert m["frozen_inputs"] == [{"name": "sr", "dtype": "int64", "shape": [], "value": [16000]}]
    entry = m["targets"][0]
    assert entry["precision"] == "fp32" and entry["parity"]["passed"]
    with Runtime.open(result.path) as rt:
        shipped = onnx.load_from_string(rt.bundle.read(entry["file"]))
        assert [i["name"] for i in rt.inputs] == ["input", "state"]
        for feeds in samples[:3]:
            got = rt.run(feeds)
            want = _original(feeds)
            for name, ref in zip(("output", "stateN"), want):
                np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-6)
    assert not any(n.op_type == "If" for n in shipped.graph.node)
    assert [i.name for i in shipped.graph.input] == ["input", "state"]


@pytest.mark.forked
def test_vad_if_is_inlined_and_nested_ifs_fold_away():
    loaded = load_model(fetch(NAME), input_shapes=SHAPES, input_values=VALUES)
    ops = [n.op_type for n in loaded.graph.node]
    assert "If" not in ops and ops.count("LSTM") == 1 and ops.count("Conv") == 6
    assert [i.name for i in loaded.graph.input] == ["input", "state"]
    sess = ort.InferenceSession(loaded.SerializeToString(), providers=["CPUExecutionProvider"])
    for seed in (1, 2):
        feeds = _feeds(seed)
        for got, want in zip(sess.run(None, feeds), _original(feeds)):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(AssertionError):                 # the other rate really takes another branch
        np.testing.assert_allclose(sess.run(None, _feeds(1))[0], ort.InferenceSession(
            str(fetch(NAME))).run(None, {**_feeds(1), "input": _feeds(1)["input"][:, :288],
                                          "sr": np.array(8000, np.int64)})[0], rtol=1e-3)


@pytest.mark.forked
def test_cpu_target_names_the_if_and_its_input_then_unrolls_the_lstm(tmp_path):
    from edgepack import targets
    cpu = targets.get("cpu").preflight
    with pytest.raises(UnsupportedOpsError) as err:
        load_model(fetch(NAME), input_shapes=SHAPES, preflight=cpu)
    text = str(err.value)
    assert "If (node 'If_0'" in text and "live input(s) 'sr'" in text and "--input-value sr=VALUE" in text
    loaded = load_model(fetch(NAME), input_shapes=SHAPES, input_values=VALUES, preflight=cpu)
    ops = [n.op_type for n in loaded.graph.node]
    assert "LSTM" not in ops and ops.count("Gemm") == 2          # the LSTM's one step: input and recurrent
    assert any(n.name.endswith("decoder/rnn/LSTM/step0/gates") for n in loaded.graph.node)
    sess = ort.InferenceSession(loaded.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = _feeds(3)
    for got, want in zip(sess.run(None, feeds), _original(feeds)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.forked
def test_cli_build_and_inspect_show_the_frozen_input(tmp_path):
    out = tmp_path / "vad.edgepack"
    args = ["build", str(fetch(NAME)), "--target", "onnx", "--input-shape", "input=1,576",
            "--input-shape", "state=2,1,128", "--input-value", "sr=16000", "-o", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["inspect", str(out)])
    assert res.exit_code == 0, res.output
    assert "frozen" in res.output and "sr" in res.output and "16000" in res.output
    bad = CliRunner().invoke(app, args[:-4] + ["--input-value", "sr=16k", "-o", str(out)])
    assert bad.exit_code == 3 and "is not an integer" in bad.output
