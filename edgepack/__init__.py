"""edgepack: one ONNX model in, a verified bundle for every edge target out."""
__version__ = "0.1.0"
