"""onnxruntime backend (CPU execution provider) for ONNX targets."""
from __future__ import annotations

import functools

import numpy as np

from ..errors import BackendError


@functools.lru_cache(maxsize=1)
def fused_int8_saturates() -> bool:
    """Whether onnxruntime's fused int8 kernels on this CPU sum u8 x s8 products in 16 bits: x86-64 without
    VNNI (AVX2 only), where ``vpmaddubsw`` saturates. There a QDQ model run with graph optimization (its
    Q/DQ pairs fused into integer kernels) differs from what the model defines: a small quantize_static CNN
    gave 0.59 for an output the model puts at 1.03, and onnxruntime's own documentation advises
    ``reduce_range`` for such CPUs. Elsewhere (VNNI, AMX, Arm) the fused kernels accumulate in 32 bits."""
    import platform
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line.split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return False                  # not Linux: nothing to read, assume the kernels are exact
    return bool(flags) and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


def is_quantized_onnx(model: bytes) -> bool:
    """Whether serialized ONNX ``model`` holds Q/DQ or QLinear ops (their names are in the bytes; a false
    positive only costs the fused kernels)."""
    return b"QuantizeLinear" in model or b"QLinear" in model


def cpu_options(model: bytes, *, num_threads: int | None = None):
    """SessionOptions for onnxruntime's CPU provider: a QDQ model on a CPU whose fused int8 kernels saturate
    (``fused_int8_saturates``) runs without the fusions (basic graph optimization: each Q/DQ as the model
    writes it, in float), which is what it defines, at float speed. (A QOperator model's QLinear ops are
    integer kernels at any optimization level; bundles ship QDQ.)"""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if num_threads:
        options.intra_op_num_threads = num_threads
    if is_quantized_onnx(model) and fused_int8_saturates():
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return options


def load_onnxruntime(model: bytes, *, num_threads: int | None = None) -> "OrtSession":
    import onnxruntime as ort
    options = cpu_options(model, num_threads=num_threads)
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
