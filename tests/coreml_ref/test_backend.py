"""The coreml-reference runtime backend: explicit only, runs bundles through Runtime and edgepack-device;
the macOS coreml backend is refused elsewhere with what to do instead."""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

from edgepack_runtime import Runtime
from edgepack_runtime.backends import BACKENDS, candidates
from edgepack_runtime.bundle import write_bundle
from edgepack_runtime.errors import BackendError
from tests.coreml_ref import mil_kit as k

W = np.random.default_rng(3).standard_normal((4, 3, 3, 3)).astype(np.float32)
B = np.random.default_rng(4).standard_normal(4).astype(np.float32)
SHAPE_IN, SHAPE_OUT = [1, 3, 6, 6], [1, 4, 6, 6]
MACOS_NOTE = "Core ML runs on macOS; use backend='coreml-reference' (a numpy reference executor, slow) to run it here"


def _reference(x):
    from tests.coreml_ref.onnx_ref import run_node
    return run_node("Relu", {"x": run_node("Conv", {"x": x}, {"pads": [1, 1, 1, 1]}, {"w": W, "b": B})[0]})[0]


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _target(name, fmt, file, precision):
    return {"name": name, "format": fmt, "file": file, "precision": precision,
            "io": {"inputs": [{"name": "x", "perm": None}], "outputs": [{"name": "y", "perm": None}]},
            "parity": {}, "info": {}}


@pytest.fixture(scope="module", params=["fp32", "fp16"])
def bundle(request, mil_tmp, tmp_path_factory):
    """A bundle with one Core ML target (conv + relu, stored as models/coreml/model.mlpackage.zip)."""
    from coremltools.converters.mil import Builder as mb
    precision = request.param
    path = k.build(mil_tmp, lambda x: mb.relu(x=mb.conv(x=x, weight=W, bias=B, pad_type="same"), name="y"),
                   {"x": SHAPE_IN}, precision=precision)
    files = {"models/coreml/model.mlpackage.zip": k.zip_package(path)}
    samples = []
    for i in range(2):
        x = k.rng(100 + i).standard_normal(SHAPE_IN).astype(np.float32)
        samples.append(f"samples/sample_{i:03d}.npz")
        files[samples[-1]] = _npz(input_0=x, output_0=_reference(x))
    manifest = {"model": {"name": "convrelu", "version": "1", "source_sha256": "0" * 64, "opsets": {"": 17}},
                "created": "2026-01-01T00:00:00Z", "tools": {"edgepack": "0.1.0"},
                "inputs": [{"name": "x", "shape": SHAPE_IN, "dtype": "float32", "layout": "NCHW"}],
                "outputs": [{"name": "y", "shape": SHAPE_OUT, "dtype": "float32", "layout": "NCHW"}],
                "targets": [_target("coreml", "mlpackage", "models/coreml/model.mlpackage.zip", precision)],
                "samples": [{"file": f} for f in samples]}
    return write_bundle(tmp_path_factory.mktemp("b") / f"conv_{precision}.edgepack", manifest, files)


def test_runtime_runs_a_coreml_bundle_with_the_reference_backend(bundle):
    x = k.rng(9).standard_normal(SHAPE_IN).astype(np.float32)
    with Runtime.open(bundle, backend="coreml-reference") as rt:
        assert rt.backend_name == "coreml-reference"
        y = rt.run({"x": x})["y"]
        report = rt.self_check()
    fp16 = rt.target["precision"] == "fp16"
    np.testing.assert_allclose(y, _reference(x), rtol=1e-2 if fp16 else 1e-5, atol=1e-2 if fp16 else 1e-5)
    assert y.dtype == np.float32 and report["passed"] and report["samples"] == 2


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the coreml backend runs these bundles")
def test_without_backend_a_coreml_bundle_says_to_ask_for_the_reference(bundle):
    with pytest.raises(BackendError) as err:
        Runtime.open(bundle)
    assert MACOS_NOTE in str(err.value)
    with pytest.raises(BackendError, match="runs on darwin only"):
        Runtime.open(bundle, backend="coreml")


def test_auto_selection_never_picks_the_reference(monkeypatch):
    coreml = _target("coreml", "mlpackage", "models/coreml/model.mlpackage.zip", "fp16")
    onnx = _target("ref", "onnx", "models/ref/model.onnx", "fp32")
    assert BACKENDS["coreml-reference"].explicit and not BACKENDS["coreml"].explicit
    for platform in ("linux", "darwin", "win32"):
        monkeypatch.setattr(sys, "platform", platform)
        pairs = candidates([coreml, onnx])
        assert all(spec.name != "coreml-reference" for spec, _ in pairs)
        if platform == "darwin":    # coremltools is installed here, so on macOS Core ML comes first
            assert pairs[0][0].name == "coreml"
        else:
            assert [s.name for s, _ in pairs] == ["onnxruntime"]
    monkeypatch.setattr(sys, "platform", "linux")
    assert [s.name for s, _ in candidates([coreml], backend="coreml-reference")] == ["coreml-reference"]


def test_device_cli_runs_with_the_reference_backend(bundle, tmp_path, capsys):
    from edgepack_runtime.cli import main
    x = k.rng(11).standard_normal(SHAPE_IN).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = main(["run", str(bundle), "--input", f"x={tmp_path / 'x.npy'}", "--backend", "coreml-reference",
                 "--output-dir", str(tmp_path / "out"), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "coreml-reference" and report["outputs"]["y"]["shape"] == SHAPE_OUT
    y = np.load(tmp_path / "out" / "y.npy")
    np.testing.assert_allclose(y, _reference(x), rtol=1e-2, atol=1e-2)
    assert main(["check", str(bundle), "--backend", "coreml-reference"]) == 0
    if sys.platform != "darwin":
        assert main(["run", str(bundle), "--input", str(tmp_path / "x.npy")]) == 8
        assert MACOS_NOTE in capsys.readouterr().err
