"""linear, matmul and einsum (float32 accumulation)."""
from __future__ import annotations

import numpy as np

from ..registry import op


@op("linear")
def linear(x, weight, bias=None):
    y = np.matmul(x.astype(np.float32), weight.astype(np.float32).T)
    return y if bias is None else y + bias


@op("matmul")
def matmul(x, y, transpose_x=False, transpose_y=False):
    if bool(transpose_x):
        x = np.swapaxes(x, -1, -2) if x.ndim > 1 else x
    if bool(transpose_y):
        y = np.swapaxes(y, -1, -2) if y.ndim > 1 else y
    return np.matmul(x, y)


@op("einsum", variadic=("values",))
def einsum(values, equation):
    return np.einsum(str(equation), *values, optimize=True)
