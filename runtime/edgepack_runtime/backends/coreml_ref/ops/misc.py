"""const, cast, fill, range_1d, topk, cumsum, band_part."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ..values import BY_NAME
from ._util import axis_of, fval, ival


@op("const")
def const(val):
    return val


@op("cast")
def cast(x, dtype):
    if str(dtype) not in BY_NAME:
        raise ValueError(f"cast to unknown dtype {dtype!r}")
    return np.asarray(x).astype(BY_NAME[str(dtype)])


@op("fill")
def fill(shape, value=0.0):
    return np.full([int(v) for v in np.asarray(shape).reshape(-1)], np.asarray(value).reshape(()))


@op("range_1d")
def range_1d(end, start, step):
    dtype = np.result_type(end, start, step)
    return np.arange(np.asarray(start).reshape(()), np.asarray(end).reshape(()),
                     np.asarray(step).reshape(()), dtype=dtype)


@op("topk")
def topk(x, k=1, axis=-1, ascending=False, sort=True, return_indices=True, output_indices_dtype="int32"):
    a, n = axis_of(axis, x.ndim), ival(k)
    key = x if bool(ascending) else -x
    order = np.argsort(key, axis=a, kind="stable")          # ties keep the lower index first
    idx = np.take(order, np.arange(n if n >= 0 else x.shape[a]), axis=a)
    values = np.take_along_axis(x, idx, axis=a)
    return (values, idx.astype(np.int32)) if bool(return_indices) else values


@op("cumsum")
def cumsum(x, axis=0, exclusive=False, reverse=False):
    a = axis_of(axis, x.ndim)
    y = np.flip(x, a) if bool(reverse) else x
    out = np.cumsum(y, axis=a)
    if bool(exclusive):   # shift by one along the axis, zero first
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=a)),
                              np.take(out, np.arange(out.shape[a] - 1), axis=a)], axis=a)
    return np.flip(out, a) if bool(reverse) else out


@op("band_part")
def band_part(x, lower=-1, upper=-1):
    rows, cols = x.shape[-2:]
    i = np.arange(rows)[:, None]
    j = np.arange(cols)[None, :]
    lo, up = ival(lower), ival(upper)
    keep = ((lo < 0) | (i - j <= lo)) & ((up < 0) | (j - i <= up))
    return np.where(keep, x, np.zeros((), x.dtype))


@op("clamped_relu")
def clamped_relu(x, alpha, beta):
    return np.minimum(np.where(x >= 0, x, fval(alpha) * x), fval(beta))
