"""TFLite interpreters: LiteRT (``ai_edge_litert``) and the older ``tflite_runtime`` share one session."""
from __future__ import annotations

import numpy as np

from ..errors import BackendError
from .quiet import XNNPACK_INFO, native_stderr_filtered


def load_litert(model: bytes, *, num_threads: int | None = None) -> "TFLiteSession":
    from ai_edge_litert.interpreter import Interpreter
    return TFLiteSession(Interpreter, model, num_threads, "litert")


def load_tflite_runtime(model: bytes, *, num_threads: int | None = None) -> "TFLiteSession":
    from tflite_runtime.interpreter import Interpreter
    return TFLiteSession(Interpreter, model, num_threads, "tflite-runtime")


def quantize_input(array: np.ndarray, detail: dict) -> np.ndarray:
    """Float data for a quantized (int8/uint8 I/O) model input is quantized with the input's own
    parameters; data already in the model's integer type passes through untouched."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"])
    if dtype.kind not in "iu" or not scale or np.asarray(array).dtype.kind != "f":
        return array
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(array, np.float32) / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize_output(array: np.ndarray, detail: dict) -> np.ndarray:
    """Quantized model outputs come back as float32 (the bundle's public interface stays float)."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if np.asarray(array).dtype.kind not in "iu" or not scale:
        return array
    return ((array.astype(np.float32) - zero_point) * scale).astype(np.float32)


class TFLiteSession:
    """Runs a .tflite model: ``run(arrays in model input order) -> arrays in model output order``.

    Inputs whose shape differs from the allocated one are resized (``resize_tensor_input``, strict so
    only dims that are -1 in the model's shape signature may change) before ``allocate_tensors``.
    """

    def __init__(self, interpreter_cls, model: bytes, num_threads: int | None, name: str):
        self.name = name
        try:
            with native_stderr_filtered(XNNPACK_INFO):    # LiteRT announces its delegate on fd 2 once per process
                self._interp = interpreter_cls(model_content=model, num_threads=num_threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"{name} could not load the model: {exc}",
                               hint="the model file is not a TFLite model this interpreter accepts: rebuild the "
                                    "bundle") from None
        self._refresh()

    def _refresh(self) -> None:
        self._inputs = self._interp.get_input_details()
        self._outputs = self._interp.get_output_details()

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        if len(arrays) != len(self._inputs):
            raise BackendError(f"model takes {len(self._inputs)} inputs, got {len(arrays)}",
                               hint="the bundle's io table does not match its model; rebuild it")
        self._resize([np.shape(a) for a in arrays])
        try:
            for detail, array in zip(self._inputs, arrays):
                self._interp.set_tensor(detail["index"], quantize_input(array, detail))
            self._interp.invoke()
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"{self.name} failed to run the model: {exc}") from None
        return [dequantize_output(self._interp.get_tensor(d["index"]), d) for d in self._outputs]

    def _resize(self, shapes) -> None:
        changed = False
        for detail, shape in zip(self._inputs, shapes):
            if tuple(detail["shape"]) != tuple(shape):
                try:
                    self._interp.resize_tensor_input(detail["index"], list(shape), strict=True)
                except (ValueError, RuntimeError) as exc:
                    raise BackendError(f"{self.name} cannot feed shape {list(shape)} to model input "
                                       f"{detail['name']} of shape {detail['shape'].tolist()}: {exc}",
                                       hint="the bundle's io table does not match its model") from None
                changed = True
        if changed:
            self._interp.allocate_tensors()
            self._refresh()

    def close(self) -> None:
        self._interp = None
