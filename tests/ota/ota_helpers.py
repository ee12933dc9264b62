"""Tiny real bundles for the OTA tests: y = x + bias as an ONNX model, one version per bias."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgepack_runtime.bundle import write_bundle

SHAPE = [1, 4]
X = np.arange(4, dtype=np.float32).reshape(SHAPE)


def onnx_add(bias: float) -> bytes:
    const = numpy_helper.from_array(np.full(SHAPE, bias, np.float32), "bias")
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], "add",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)], [const])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def make_bundle(path: Path, version: str, bias: float, *, ref_bias: float | None = None,
                devices: list[str] | None = None, samples: int = 2) -> Path:
    """A bundle whose model adds ``bias``; its samples' references add ``ref_bias`` (wrong when they differ)."""
    ref_bias = bias if ref_bias is None else ref_bias
    files = {"models/ref/model.onnx": onnx_add(bias)}
    rng = np.random.default_rng(0)
    names = []
    for i in range(samples):
        x = rng.standard_normal(SHAPE).astype(np.float32)
        names.append(f"samples/sample_{i:03d}.npz")
        files[names[-1]] = npz(input_0=x, output_0=x + np.float32(ref_bias))
    target = {"name": "ref", "format": "onnx", "file": "models/ref/model.onnx", "precision": "fp32",
              "io": {"inputs": [{"name": "x", "perm": None}], "outputs": [{"name": "y", "perm": None}]},
              "parity": {}, "info": {}}
    if devices is not None:
        target["devices"] = devices
    tensor = lambda n: {"name": n, "shape": SHAPE, "dtype": "float32", "layout": None}  # noqa: E731
    manifest = {"model": {"name": "adder", "version": version, "source_sha256": "0" * 64, "opsets": {"": 17}},
                "created": "2025-01-01T00:00:00Z", "tools": {"edgepack": "test"},
                "inputs": [tensor("x")], "outputs": [tensor("y")], "targets": [target],
                "samples": [{"file": f} for f in names]}
    return write_bundle(path, manifest, files)


def served_bias(path: Path) -> float:
    """Run the bundle at ``path`` with the real backend and return the constant it adds."""
    from edgepack_runtime import Runtime
    with Runtime.open(path) as rt:
        y = rt.run({"x": X})["y"]
    return float(np.round((y - X).mean(), 4))
