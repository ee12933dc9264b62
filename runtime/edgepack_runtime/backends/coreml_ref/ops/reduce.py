"""reduce_* ops (axes=None reduces everything) and reduce_argmax/argmin."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ._util import axes_of, axis_of


def _reduce(fn):
    def run(x, axes=None, keep_dims=False):
        return fn(x, axes_of(axes, x.ndim), bool(keep_dims))
    return run


REDUCE = {
    "reduce_sum": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "reduce_mean": lambda x, a, k: np.mean(x, axis=a, keepdims=k),
    "reduce_max": lambda x, a, k: np.max(x, axis=a, keepdims=k),
    "reduce_min": lambda x, a, k: np.min(x, axis=a, keepdims=k),
    "reduce_prod": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "reduce_l1_norm": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "reduce_l2_norm": lambda x, a, k: np.sqrt(np.sum(np.square(x), axis=a, keepdims=k)),
    "reduce_sum_square": lambda x, a, k: np.sum(np.square(x), axis=a, keepdims=k),
    "reduce_log_sum": lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k)),
    "reduce_log_sum_exp": lambda x, a, k: _logsumexp(x, a, k),
}


def _logsumexp(x, axes, keep):
    m = np.max(x, axis=axes, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return out if keep else np.squeeze(out, axis=axes if axes is not None else tuple(range(x.ndim)))


for _name, _fn in REDUCE.items():
    op(_name)(_reduce(_fn))


@op("reduce_argmax")
def reduce_argmax(x, axis=-1, keep_dims=False, output_dtype="int32"):
    a = axis_of(axis, x.ndim)
    out = np.argmax(x, axis=a)
    return np.expand_dims(out, a) if bool(keep_dims) else out


@op("reduce_argmin")
def reduce_argmin(x, axis=-1, keep_dims=False, output_dtype="int32"):
    a = axis_of(axis, x.ndim)
    out = np.argmin(x, axis=a)
    return np.expand_dims(out, a) if bool(keep_dims) else out
