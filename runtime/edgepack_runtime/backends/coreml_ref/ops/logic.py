"""Comparisons, logical ops and select (bool results)."""
from __future__ import annotations

import numpy as np

from ..registry import op

COMPARE = {"equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
           "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
           "logical_or": np.logical_or, "logical_xor": np.logical_xor}


def _compare(ufunc):
    def run(x, y):
        return ufunc(x, y)
    return run


for _name, _fn in COMPARE.items():
    op(_name)(_compare(_fn))


@op("logical_not")
def logical_not(x):
    return np.logical_not(x)


@op("select")
def select(cond, a, b):
    return np.where(np.asarray(cond).astype(bool), a, b)
