"""Keys and a tiny bundle (y = x + 1 as an ONNX target, two health-check samples) for the signing tests."""
from __future__ import annotations

import io

import numpy as np
import pytest

from edgepack_runtime.bundle import write_bundle
from edgepack_runtime.signing import load_trust_keys, write_keypair

SHAPE = [1, 4]


def onnx_add_one() -> bytes:
    from onnx import TensorProto, helper, numpy_helper
    one = numpy_helper.from_array(np.ones(SHAPE, np.float32), "one")
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add1",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def tiny_bundle(path, version: str = "1"):
    """A bundle the onnxruntime backend runs: y = x + 1, samples whose references it reproduces."""
    files = {"models/onnx/model.onnx": onnx_add_one()}
    rng = np.random.default_rng(3)
    for i in range(2):
        x = rng.standard_normal(SHAPE).astype(np.float32)
        buf = io.BytesIO()
        np.savez(buf, input_0=x, output_0=x + 1)
        files[f"samples/sample_{i:03d}.npz"] = buf.getvalue()
    spec = lambda n: {"name": n, "shape": SHAPE, "dtype": "float32", "layout": None}  # noqa: E731
    manifest = {"model": {"name": "tiny", "version": version, "source_sha256": "0" * 64, "opsets": {"": 17}},
                "created": "2025-01-01T00:00:00Z", "tools": {"edgepack": "test"},
                "inputs": [spec("x")], "outputs": [spec("y")],
                "targets": [{"name": "onnx", "format": "onnx", "file": "models/onnx/model.onnx",
                             "precision": "fp32", "io": {"inputs": [{"name": "x", "perm": None}],
                                                         "outputs": [{"name": "y", "perm": None}]},
                             "parity": {}, "info": {}}],
                "samples": [{"file": f"samples/sample_{i:03d}.npz"} for i in range(2)]}
    return write_bundle(path, manifest, files)


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """Two key pairs: ``keys["a"]`` and ``keys["b"]``, each {"private", "public", "key_id"}."""
    folder = tmp_path_factory.mktemp("keys")
    pairs = {}
    for name in ("a", "b"):
        paths = write_keypair(folder, name=name)
        pairs[name] = dict(paths, key_id=load_trust_keys([paths["public"]])[0].key_id)
    return pairs


@pytest.fixture
def bundle(tmp_path):
    return tiny_bundle(tmp_path / "tiny.edgepack")
