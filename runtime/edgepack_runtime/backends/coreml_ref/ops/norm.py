"""Normalizations: batch_norm, instance_norm, layer_norm, local_response_norm, l2_norm."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ._util import axes_of, channel_shape, fval, ival


@op("batch_norm")
def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    r = x.ndim
    y = (x - channel_shape(mean, r)) / np.sqrt(channel_shape(variance, r) + fval(epsilon))
    if gamma is not None:
        y = y * channel_shape(gamma, r)
    return y if beta is None else y + channel_shape(beta, r)


@op("instance_norm")
def instance_norm(x, gamma=None, beta=None, epsilon=1e-5):
    axes = tuple(range(2, x.ndim))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + fval(epsilon))
    if gamma is not None:
        y = y * channel_shape(gamma, x.ndim)
    return y if beta is None else y + channel_shape(beta, x.ndim)


@op("layer_norm")
def layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    ax = axes_of(axes, x.ndim)
    ax = tuple(range(x.ndim)) if ax is None else ax
    y = (x - x.mean(axis=ax, keepdims=True)) / np.sqrt(x.var(axis=ax, keepdims=True) + fval(epsilon))
    # gamma/beta have the shape of the normalized axes: broadcast them onto those axes
    shape = [x.shape[i] if i in ax else 1 for i in range(x.ndim)]
    if gamma is not None:
        y = y * np.reshape(gamma, shape)
    return y if beta is None else y + np.reshape(beta, shape)


@op("local_response_norm")
def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    n = ival(size)
    sq = np.square(x.astype(np.float32))
    pad = [(0, 0), ((n - 1) // 2, n // 2)] + [(0, 0)] * (x.ndim - 2)
    padded = np.pad(sq, pad)
    c = x.shape[1]
    total = sum(padded[:, i:i + c] for i in range(n))
    return x / (fval(k) + fval(alpha) / n * total) ** fval(beta)


@op("l2_norm")
def l2_norm(x, epsilon=1e-6):
    axes = tuple(range(x.ndim - 3, x.ndim))
    return x / np.sqrt(np.sum(np.square(x), axis=axes, keepdims=True) + fval(epsilon))
