"""Resizing of the last two axes: nearest neighbour and bilinear (grid rules of MIL's docs)."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ._util import fval, ival


def _grid(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """Source coordinate of each output position along one axis."""
    i = np.arange(n_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "align"):
        if n_out == 1:
            g = np.full(1, (n_in - 1) / 2.0 if mode != "STRICT_ALIGN_CORNERS" else 0.0)
        else:
            g = i * (n_in - 1) / (n_out - 1)
    elif mode in ("DEFAULT", "asymmetric"):
        g = i * n_in / n_out
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    elif mode in ("UNALIGN_CORNERS", "half"):
        g = (i + 0.5) * n_in / n_out - 0.5
    else:
        raise ValueError(f"unknown sampling mode {mode!r}")
    return np.clip(g, 0, n_in - 1)


def _lerp_axis(x, axis, coords):
    lo = np.floor(coords).astype(np.int64)
    hi = np.minimum(lo + 1, x.shape[axis] - 1)
    w = (coords - lo).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = -1
    w = w.reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - w) + np.take(x, hi, axis=axis) * w


def _bilinear(x, h_out, w_out, mode):
    x = x.astype(np.float32)
    y = _lerp_axis(x, x.ndim - 2, _grid(x.shape[-2], h_out, mode))
    return _lerp_axis(y, x.ndim - 1, _grid(x.shape[-1], w_out, mode))


@op("upsample_bilinear")
def upsample_bilinear(x, scale_factor_height=1, scale_factor_width=1, align_corners=True,
                      half_pixel_centers=None):
    h, w = int(x.shape[-2] * fval(scale_factor_height)), int(x.shape[-1] * fval(scale_factor_width))
    if bool(align_corners):
        mode = "align"
    else:
        half = True if half_pixel_centers is None else bool(half_pixel_centers)
        mode = "half" if half else "asymmetric"
    return _bilinear(x, h, w, mode)


@op("resize_bilinear")
def resize_bilinear(x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    return _bilinear(x, ival(target_size_height), ival(target_size_width), str(sampling_mode))


@op("upsample_nearest_neighbor")
def upsample_nearest_neighbor(x, scale_factor_height=1, scale_factor_width=1):
    sh, sw = fval(scale_factor_height), fval(scale_factor_width)
    h, w = int(x.shape[-2] * sh), int(x.shape[-1] * sw)
    rows = np.minimum(np.floor(np.arange(h) / sh).astype(np.int64), x.shape[-2] - 1)
    cols = np.minimum(np.floor(np.arange(w) / sw).astype(np.int64), x.shape[-1] - 1)
    return np.take(np.take(x, rows, axis=-2), cols, axis=-1)


@op("resize_nearest_neighbor")
def resize_nearest_neighbor(x, target_size_height=1, target_size_width=1):
    h, w = ival(target_size_height), ival(target_size_width)
    rows = np.minimum((np.arange(h) * x.shape[-2] / h).astype(np.int64), x.shape[-2] - 1)
    cols = np.minimum((np.arange(w) * x.shape[-1] / w).astype(np.int64), x.shape[-1] - 1)
    return np.take(np.take(x, rows, axis=-2), cols, axis=-1)
