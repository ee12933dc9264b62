"""Small real bundles for the delivery tests: y = x + bias as an ONNX target, with samples for the health check."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from edgepack_runtime.bundle import write_bundle
from tests.runtime.rt_helpers import NCHW, base_manifest, npz_bytes, onnx_add_model, target, tensor

DEVICE = f"{sys.executable} -m edgepack_runtime.cli"      # the device's edgepack-device, by full path


def add_bundle(path: Path, bias=(10.0, 20.0), *, version: str = "1", sample_bias=None, samples: int = 2) -> Path:
    """``y = x + bias[channel]`` (NCHW [1, 2, 3, 4]); samples hold ``x + sample_bias`` (default: the truth)."""
    bias = np.asarray(bias, dtype=np.float32)
    sample_bias = bias if sample_bias is None else np.asarray(sample_bias, dtype=np.float32)
    files = {"models/ref/model.onnx": onnx_add_model(bias=bias)}
    rng = np.random.default_rng(0)
    names = []
    for i in range(samples):
        x = rng.standard_normal(NCHW).astype(np.float32)
        names.append(f"samples/sample_{i:03d}.npz")
        files[names[-1]] = npz_bytes(input_0=x, output_0=x + sample_bias.reshape(1, -1, 1, 1))
    manifest = base_manifest([tensor("x", NCHW, layout="NCHW")], [tensor("y", NCHW, layout="NCHW")],
                             [target("ref", "onnx", "models/ref/model.onnx", [("x", None)], [("y", None)])], names)
    manifest["model"]["version"] = version
    return write_bundle(path, manifest, files)


def served_bias(bundle_path: Path) -> list[float]:
    """Run the bundle on zeros with the real runtime: the per-channel bias it adds."""
    from edgepack_runtime.runtime import Runtime
    with Runtime.open(bundle_path) as rt:
        y = rt.run({"x": np.zeros(NCHW, np.float32)})["y"]
    return [float(y[0, c, 0, 0]) for c in range(y.shape[1])]


def active_bias(state: Path) -> list[float]:
    """What the device's state folder serves now (its active slot, opened with the real runtime)."""
    from edgepack_runtime.ota import Updater
    return served_bias(Updater(state).active())
