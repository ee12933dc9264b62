"""ONNX -> TFLite target: flatbuffer writer, op registry, layout policy (see ``layout.py``)."""
from .convert import TFLiteModel, convert, preflight
from .registry import TFLITE

__all__ = ["TFLITE", "TFLiteModel", "convert", "preflight"]
