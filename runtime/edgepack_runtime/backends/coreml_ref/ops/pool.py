"""max_pool, avg_pool and l2_pool over 1-3 spatial dims."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ._util import ints
from ._window import paddings, windows


def _setup(x, kernel_sizes, strides, pad_type, pad, ceil_mode):
    kernel = ints(kernel_sizes)
    n = len(kernel)
    strides = ints(strides) if strides is not None else [1] * n
    pads = paddings(pad_type, pad, x.shape[2:], kernel, strides, [1] * n, ceil_mode=bool(ceil_mode))
    axes = tuple(range(-n, 0))
    return kernel, strides, pads, axes


@op("max_pool")
def max_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    kernel, strides, pads, axes = _setup(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    return windows(x, kernel, strides, [1] * len(kernel), pads, value=-np.inf).max(axis=axes)


@op("avg_pool")
def avg_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False,
             exclude_padding_from_average=False):
    kernel, strides, pads, axes = _setup(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    dil = [1] * len(kernel)
    total = windows(x.astype(np.float32), kernel, strides, dil, pads).sum(axis=axes)
    if bool(exclude_padding_from_average):
        ones = np.ones((1, 1) + x.shape[2:], np.float32)
        return total / windows(ones, kernel, strides, dil, pads).sum(axis=axes)
    return total / float(np.prod(kernel))


@op("l2_pool")
def l2_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    kernel, strides, pads, axes = _setup(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    return np.sqrt(np.square(windows(x, kernel, strides, [1] * len(kernel), pads)).sum(axis=axes))
