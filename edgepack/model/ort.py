"""Run an in-memory ONNX model with onnxruntime (also past protobuf's 2 GB limit)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import ModelProto

from edgepack.model.read import fits_protobuf


def run_model(model: ModelProto, feeds: dict[str, np.ndarray], outputs: list[str] | None = None,
              *, optimize: bool = False) -> list[np.ndarray]:
    """Run ``model`` on CPU with onnxruntime and return the requested outputs (default: all)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if fits_protobuf(model):
        session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return session.run(outputs, feeds)
    with tempfile.TemporaryDirectory(prefix="edgepack-ort-") as tmp:
        path = Path(tmp) / "model.onnx"
        copy = ModelProto()
        copy.CopyFrom(model)
        onnx.save_model(copy, str(path), save_as_external_data=True, location="weights.bin")
        del copy
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return session.run(outputs, feeds)
