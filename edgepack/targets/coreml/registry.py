"""The Core ML target's op registry (converters register themselves from ``ops/``)."""
import numpy as np

from ..registry import Registry

# ONNX tensor types a converted ML Program can carry (int64 becomes int32, float64 becomes float32).
TENSOR_TYPES = {np.dtype(t) for t in (np.float32, np.float16, np.float64, np.int32, np.int64, np.int16,
                                      np.int8, np.uint8, np.bool_)}


MAX_RANK = 5              # Core ML refuses tensors of higher rank


def _tensor_types(node, ctx):
    names = [n for n in list(node.input) + list(node.output) if n]
    bad = sorted({str(ctx.dtype(n)) for n in names if ctx.dtype(n) not in TENSOR_TYPES})
    if bad:
        return f"tensor type(s) {', '.join(bad)} have no Core ML equivalent"
    empty = [n for n in names if 0 in ctx.shape(n) and ctx.const(n) is None]   # (an empty axes list is fine)
    if empty:
        return f"zero-size tensor '{empty[0]}' {list(ctx.shape(empty[0]))}"
    deep = [n for n in names if ctx.rank(n) > MAX_RANK]
    return f"rank {ctx.rank(deep[0])} tensor '{deep[0]}' (Core ML tensors have rank <= {MAX_RANK})" if deep else None


COREML = Registry("coreml", node_check=_tensor_types)
