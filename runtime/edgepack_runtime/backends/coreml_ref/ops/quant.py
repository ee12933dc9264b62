"""Activation quantization (iOS17): ``quantize`` / ``dequantize``, as coremltools' W8A8 programs place them
around convolutions, linears, pools and adds. ``quantize``: clip(round(x / scale) + zero_point) into int8 or
uint8, rounding half to even (coremltools' own value inference); ``dequantize``: (q - zero_point) * scale.
``scale`` / ``zero_point`` are scalars or vectors along ``axis``."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ._util import axis_of

RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def _along(param, rank: int, axis) -> np.ndarray:
    p = np.asarray(param, np.float32)
    if p.ndim == 0 or axis is None:
        return p
    shape = [1] * rank
    shape[axis_of(axis, rank)] = -1
    return p.reshape(shape)


@op("quantize")
def quantize(input, scale, output_dtype, zero_point=None, axis=None):
    x = np.asarray(input, np.float32)
    q = np.around(x / _along(scale, x.ndim, axis))
    if zero_point is not None:
        q = q + _along(zero_point, x.ndim, axis)
    lo, hi = RANGES[str(output_dtype)]
    return np.clip(q, lo, hi).astype(output_dtype)


@op("dequantize")
def dequantize(input, scale, zero_point=None, axis=None):
    q = np.asarray(input, np.float32)
    if zero_point is not None:
        q = q - _along(zero_point, q.ndim, axis)
    return q * _along(scale, q.ndim, axis)
