"""Sliding windows shared by conv and pooling: padding arithmetic and strided window views."""
from __future__ import annotations

import math

import numpy as np

from ._util import ints


def paddings(pad_type: str, pad, sizes, kernel, strides, dilations, ceil_mode=False) -> list[tuple[int, int]]:
    """(before, after) per spatial dim for MIL's pad_type valid | same | same_lower | custom.

    ``ceil_mode`` (pooling) adds at the end whatever makes the last partial window count."""
    n = len(sizes)
    if pad_type == "valid":
        out = [(0, 0)] * n
    elif pad_type == "custom":
        p = ints(pad) if pad is not None else [0] * (2 * n)
        out = [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    elif pad_type in ("same", "same_lower"):
        out = []
        for d, k, s, dl in zip(sizes, kernel, strides, dilations):
            total = max((math.ceil(d / s) - 1) * s + (k - 1) * dl + 1 - d, 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if pad_type == "same" else (big, small))
    else:
        raise ValueError(f"unknown pad_type {pad_type!r}")
    if ceil_mode:
        fixed = []
        for (b, e), d, k, s, dl in zip(out, sizes, kernel, strides, dilations):
            span = d + b + e - ((k - 1) * dl + 1)
            extra = (-span) % s if span >= 0 else 0
            fixed.append((b, e + extra))
        out = fixed
    return out


def windows(x: np.ndarray, kernel, strides, dilations, pads, value=0.0) -> np.ndarray:
    """[N, C, *D] padded with ``value`` -> a view [N, C, *D_out, *K] of the windows."""
    n = len(kernel)
    xp = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads], constant_values=value)
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    view = np.lib.stride_tricks.sliding_window_view(xp, span, axis=tuple(range(2, 2 + n)))
    index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) \
        + tuple(slice(None, None, d) for d in dilations)
    return view[index]
