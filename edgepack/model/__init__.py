"""Model intake: read an ONNX file, fix its shapes, fold constants, and make synthetic inputs."""
from edgepack.model.inputs import make_inputs
from edgepack.model.loader import load_model
from edgepack.model.shapes import parse_input_shape

__all__ = ["load_model", "make_inputs", "parse_input_shape"]
