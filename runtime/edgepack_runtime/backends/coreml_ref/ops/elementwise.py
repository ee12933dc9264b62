"""Elementwise arithmetic: binary ops with numpy broadcasting, unary math."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ._util import erf as _erf
from ._util import fval

BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.true_divide,
          "pow": np.power, "maximum": np.maximum, "minimum": np.minimum, "floor_div": np.floor_divide,
          "mod": np.mod}
UNARY = {"abs": np.abs, "ceil": np.ceil, "floor": np.floor, "round": np.round, "sign": np.sign,
         "exp": np.exp, "exp2": np.exp2, "sqrt": np.sqrt, "square": np.square, "sin": np.sin, "cos": np.cos,
         "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh,
         "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh}


def _binary(ufunc):
    def run(x, y):
        return ufunc(x, y)
    return run


def _unary(ufunc):
    def run(x):
        return ufunc(x)
    return run


for _name, _fn in BINARY.items():
    op(_name)(_binary(_fn))
for _name, _fn in UNARY.items():
    op(_name)(_unary(_fn))


@op("erf")
def erf(x):
    return _erf(x)


@op("log")
def log(x, epsilon=1e-45):
    return np.log(x + fval(epsilon))


@op("rsqrt")
def rsqrt(x, epsilon=1e-12):
    return 1.0 / np.sqrt(x + fval(epsilon))


@op("inverse")
def inverse(x, epsilon=1e-4):
    return 1.0 / (x + fval(epsilon))


@op("threshold")
def threshold(x, alpha):
    return np.maximum(x, alpha)
