"""The TFLite target's op registry (converters register themselves from ``ops/``)."""
from ..registry import Registry

TFLITE = Registry("tflite")
