"""Helpers of the shadow tests: real bundles y = x + b (b a vector, so that top-1 can change), the figures a
shadow should report computed offline with numpy, and small MQTT helpers around the flash tests' Device."""
from __future__ import annotations

import io
import json
import urllib.request
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgepack_runtime import wire
from edgepack_runtime.bundle import write_bundle
from edgepack_runtime.compare import cosine

SHAPE = [1, 4]
SERVING = np.zeros(SHAPE, np.float32)                                    # bias of the serving model
CANDIDATE = np.array([[0.0, 0.6, 0.0, -0.3]], np.float32)               # slightly different: top-1 moves at times


def _onnx(bias: np.ndarray) -> bytes:
    graph = helper.make_graph([helper.make_node("Add", ["x", "bias"], ["y"])], "add",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)],
                              [numpy_helper.from_array(np.asarray(bias, np.float32).reshape(SHAPE), "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def make_bundle(path: Path, version: str, bias: np.ndarray, *, shape: list[int] | None = None,
                ref: np.ndarray | None = None) -> Path:
    """A real bundle (onnxruntime target) whose model adds ``bias``, with a sample that expects ``x + ref``
    (``ref`` = ``bias`` by default). ``shape`` changes only the declared input shape (a candidate that cannot
    shadow the serving model)."""
    x = np.random.default_rng(3).standard_normal(SHAPE).astype(np.float32)
    ref = bias if ref is None else ref
    files = {"models/ref/model.onnx": _onnx(bias), "samples/sample_000.npz": _npz(input_0=x, output_0=x + ref)}
    target = {"name": "ref", "format": "onnx", "file": "models/ref/model.onnx", "precision": "fp32",
              "io": {"inputs": [{"name": "x", "perm": None}], "outputs": [{"name": "y", "perm": None}]},
              "parity": {}, "info": {}}
    tensor = {"shape": SHAPE, "dtype": "float32", "layout": None}
    manifest = {"model": {"name": "adder", "version": version, "source_sha256": "0" * 64, "opsets": {"": 17}},
                "created": "2025-01-01T00:00:00Z", "tools": {"edgepack": "test"},
                "inputs": [{"name": "x", **dict(tensor, shape=shape or SHAPE)}],
                "outputs": [{"name": "y", **tensor}], "targets": [target],
                "samples": [{"file": "samples/sample_000.npz"}]}
    return write_bundle(path, manifest, files)


def inputs(n: int, seed: int = 11) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(n)]


def offline(xs: list[np.ndarray], served_bias: np.ndarray, candidate_bias: np.ndarray) -> dict:
    """What the shadow block must say for these inputs: cosine mean/min, max abs difference, top-1 agreement."""
    served = [x + served_bias for x in xs]
    cand = [x + candidate_bias for x in xs]
    cos = [cosine(a, b) for a, b in zip(served, cand)]
    return {"cosine_mean": float(np.mean(cos)), "cosine_min": float(np.min(cos)),
            "max_abs": float(max(np.max(np.abs(a.astype(np.float64) - b)) for a, b in zip(served, cand))),
            "top1": float(np.mean([a.argmax() == b.argmax() for a, b in zip(served, cand)]))}


def infer(port: int, x: np.ndarray) -> np.ndarray:
    """One request to the agent's local HTTP API; the answer's ``y``."""
    body = json.dumps({"inputs": {"x": x.tolist()}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/infer", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return wire.decode("y", json.loads(r.read())["outputs"]["y"], "float32")
