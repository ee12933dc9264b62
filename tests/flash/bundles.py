"""Small real bundles for the flash tests: y = x + bias as an ONNX model (run by onnxruntime), padded with a
member of random bytes to the size a test needs, so that a transfer takes many chunks."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgepack_runtime.bundle import write_bundle

SHAPE = [1, 4]
X = np.arange(4, dtype=np.float32).reshape(SHAPE)


def _onnx_add(bias: float) -> bytes:
    const = numpy_helper.from_array(np.full(SHAPE, bias, np.float32), "bias")
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], "add",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)], [const])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def make_bundle(path: Path, version: str, bias: float, *, pad: int = 0, devices: list[str] | None = None,
                ref_bias: float | None = None) -> Path:
    """A bundle whose model adds ``bias`` (samples expect ``ref_bias``, the same by default), with ``pad`` bytes
    of random data in ``extra/pad.bin`` and ``devices`` as the profiles its target suits."""
    ref = bias if ref_bias is None else ref_bias
    rng = np.random.default_rng(int(bias * 1000) + pad)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    files = {"models/ref/model.onnx": _onnx_add(bias), "samples/sample_000.npz": _npz(input_0=x, output_0=x + ref)}
    if pad:
        files["extra/pad.bin"] = rng.integers(0, 256, pad, dtype=np.uint8).tobytes()
    target = {"name": "ref", "format": "onnx", "file": "models/ref/model.onnx", "precision": "fp32",
              "io": {"inputs": [{"name": "x", "perm": None}], "outputs": [{"name": "y", "perm": None}]},
              "parity": {}, "info": {}}
    if devices is not None:
        target["devices"] = devices
    tensor = {"shape": SHAPE, "dtype": "float32", "layout": None}
    manifest = {"model": {"name": "adder", "version": version, "source_sha256": "0" * 64, "opsets": {"": 17}},
                "created": "2025-01-01T00:00:00Z", "tools": {"edgepack": "test"},
                "inputs": [{"name": "x", **tensor}], "outputs": [{"name": "y", **tensor}], "targets": [target],
                "samples": [{"file": "samples/sample_000.npz"}]}
    return write_bundle(path, manifest, files)


def built_bundle(folder: Path, version: str, bias: float, *, sign_key: Path | None = None) -> Path:
    """The same model through ``edgepack build`` (cpu target: TFLite, verified against onnxruntime), signed
    with ``sign_key`` when given: the bundle an operator would flash."""
    from edgepack.build import build
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / f"add{version}.onnx"
    model.write_bytes(_onnx_add(bias))
    rng = np.random.default_rng(7)
    samples = [{"x": rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(20)]
    return build(model, targets=["cpu"], samples=samples, out=folder / f"add{version}.edgepack", version=version,
                 sign_key=sign_key).path
