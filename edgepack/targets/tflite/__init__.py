"""ONNX -> TFLite target (``cpu``): flatbuffer writer, op registry, layout policy (see ``layout.py``),
weight compression (``compress.py``) and full-integer int8 (``quant/``). The target object is
``target.TARGET``."""
from .convert import TFLiteModel, convert, preflight
from .registry import TFLITE

__all__ = ["TFLITE", "TFLiteModel", "convert", "preflight"]
