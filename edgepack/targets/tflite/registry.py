"""The TFLite target's op registry (converters register themselves from ``ops/``)."""
import numpy as np

from ..registry import Registry

# Tensor types TFLite models can carry between ops (float16 only around CAST).
TENSOR_TYPES = {np.dtype(t) for t in (np.float32, np.int32, np.int64, np.int16, np.int8, np.uint8, np.bool_)}


def _tensor_types(node, ctx):
    names = [n for n in list(node.input) + list(node.output) if n]
    bad = sorted({str(ctx.dtype(n)) for n in names if ctx.dtype(n) not in TENSOR_TYPES
                  and not (node.op_type == "Cast" and ctx.dtype(n) == np.float16)})
    return f"tensor type(s) {', '.join(bad)} have no TFLite equivalent here" if bad else None


TFLITE = Registry("tflite", node_check=_tensor_types)
