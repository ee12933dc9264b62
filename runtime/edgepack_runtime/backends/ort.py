"""onnxruntime backend (CPU execution provider) for ONNX targets."""
from __future__ import annotations

import numpy as np

from ..errors import BackendError


def load_onnxruntime(model: bytes, *, num_threads: int | None = None) -> "OrtSession":
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if num_threads:
        options.intra_op_num_threads = num_threads
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise BackendError(f"onnxruntime could not load the model: {exc}",
                           hint="rebuild the bundle") from None
    return OrtSession(session)


class OrtSession:
    """``run(arrays in model input order) -> arrays in model output order``."""

    name = "onnxruntime"

    def __init__(self, session):
        self._session = session
        self._input_names = [i.name for i in session.get_inputs()]

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        if len(arrays) != len(self._input_names):
            raise BackendError(f"model takes {len(self._input_names)} inputs, got {len(arrays)}",
                               hint="the bundle's io table does not match its model; rebuild it")
        try:
            return self._session.run(None, dict(zip(self._input_names, arrays)))
        except Exception as exc:
            raise BackendError(f"onnxruntime failed to run the model: {exc}") from None

    def close(self) -> None:
        self._session = None
