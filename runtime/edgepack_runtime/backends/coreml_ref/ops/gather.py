"""gather, gather_along_axis, gather_nd (negative indices count from the end)."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ._util import axis_of, ival


def _positive(indices, size):
    idx = np.asarray(indices).astype(np.int64)
    return np.where(idx < 0, idx + size, idx)


@op("gather")
def gather(x, indices, axis=0, batch_dims=0, validate_indices=False):
    a, b = axis_of(axis, x.ndim), ival(batch_dims)
    idx = _positive(indices, x.shape[a])
    if b == 0:
        return np.take(x, idx, axis=a)
    lead = x.shape[:b]
    xs = x.reshape((-1,) + x.shape[b:])
    ids = idx.reshape((-1,) + idx.shape[b:])
    out = np.stack([np.take(xi, ii, axis=a - b) for xi, ii in zip(xs, ids)])
    return out.reshape(lead + out.shape[1:])


@op("gather_along_axis")
def gather_along_axis(x, indices, axis=0, validate_indices=False):
    a = axis_of(axis, x.ndim)
    return np.take_along_axis(x, _positive(indices, x.shape[a]), axis=a)


@op("gather_nd")
def gather_nd(x, indices, batch_dims=0, validate_indices=False):
    if ival(batch_dims):
        raise ValueError("gather_nd with batch_dims > 0 is not implemented")
    idx = np.asarray(indices).astype(np.int64)
    k = idx.shape[-1]
    idx = np.where(idx < 0, idx + np.array(x.shape[:k]), idx)
    return x[tuple(np.moveaxis(idx, -1, 0))]
