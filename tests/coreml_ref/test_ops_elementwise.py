"""Elementwise, activation and logic ops against numpy formulas, in fp32 and fp16 programs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.coreml_ref import mil_kit as k

SHAPE = [2, 3, 4, 2]


def _mb():
    from coremltools.converters.mil import Builder as mb
    return mb


_erf = np.vectorize(math.erf)
# name -> (builder(x) or builder(x, y), numpy reference, input low, input high)
UNARY = {
    "abs": (lambda x: _mb().abs(x=x), np.abs, -3, 3),
    "sqrt": (lambda x: _mb().sqrt(x=x), np.sqrt, 0.1, 4),
    "rsqrt": (lambda x: _mb().rsqrt(x=x), lambda x: 1 / np.sqrt(x + 1e-12), 0.1, 4),
    "exp": (lambda x: _mb().exp(x=x), np.exp, -3, 3),
    "log": (lambda x: _mb().log(x=x), np.log, 0.1, 4),
    "inverse": (lambda x: _mb().inverse(x=x), lambda x: 1 / (x + 1e-4), 0.5, 4),
    "erf": (lambda x: _mb().erf(x=x), _erf, -3, 3),
    "floor": (lambda x: _mb().floor(x=x), np.floor, -3, 3),
    "relu": (lambda x: _mb().relu(x=x), lambda x: np.maximum(x, 0), -3, 3),
    "leaky_relu": (lambda x: _mb().leaky_relu(x=x, alpha=0.1), lambda x: np.where(x > 0, x, 0.1 * x), -3, 3),
    "prelu": (lambda x: _mb().prelu(x=x, alpha=np.array([0.1, 0.2, 0.3], np.float32)),
              lambda x: np.where(x > 0, x, x * np.array([0.1, 0.2, 0.3]).reshape(1, 3, 1, 1)), -3, 3),
    "clip": (lambda x: _mb().clip(x=x, alpha=-1.0, beta=1.5), lambda x: np.clip(x, -1, 1.5), -3, 3),
    "sigmoid": (lambda x: _mb().sigmoid(x=x), lambda x: 1 / (1 + np.exp(-x)), -5, 5),
    "sigmoid_hard": (lambda x: _mb().sigmoid_hard(x=x, alpha=0.2, beta=0.5),
                     lambda x: np.clip(0.2 * x + 0.5, 0, 1), -5, 5),
    "silu": (lambda x: _mb().silu(x=x), lambda x: x / (1 + np.exp(-x)), -5, 5),
    "tanh": (lambda x: _mb().tanh(x=x), np.tanh, -3, 3),
    "gelu_exact": (lambda x: _mb().gelu(x=x), lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2))), -4, 4),
    "gelu_tanh": (lambda x: _mb().gelu(x=x, mode="TANH_APPROXIMATION"),
                  lambda x: 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3))), -4, 4),
    "softmax": (lambda x: _mb().softmax(x=x, axis=1),
                lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True), -3, 3),
    "softplus": (lambda x: _mb().softplus(x=x), lambda x: np.log1p(np.exp(x)), -4, 4),
    "elu": (lambda x: _mb().elu(x=x, alpha=0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x)), -3, 3),
}
BINARY = {
    "add": (lambda x, y: _mb().add(x=x, y=y), np.add),
    "sub": (lambda x, y: _mb().sub(x=x, y=y), np.subtract),
    "mul": (lambda x, y: _mb().mul(x=x, y=y), np.multiply),
    "real_div": (lambda x, y: _mb().real_div(x=x, y=y), np.divide),
    "pow": (lambda x, y: _mb().pow(x=x, y=y), np.power),
    "maximum": (lambda x, y: _mb().maximum(x=x, y=y), np.maximum),
    "minimum": (lambda x, y: _mb().minimum(x=x, y=y), np.minimum),
}
COMPARE = {
    "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal,
}
TOL = {"fp32": 2e-6, "fp16": 2e-3}


def _check(got, ref, precision):
    ref = np.asarray(ref, np.float64)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=TOL[precision], atol=TOL[precision] * scale)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name, precision, mil_tmp):
    builder, ref, lo, hi = UNARY[name]
    prog = k.load(k.build(mil_tmp, lambda x: builder(x), {"x": SHAPE}, precision=precision))
    assert prog.compute_precision == precision
    x = k.rng(1).uniform(lo, hi, SHAPE).astype(np.float32)
    feed = x.astype(np.float16).astype(np.float32) if precision == "fp16" else x
    (got,) = prog.run({"x": x}).values()
    _check(got, ref(feed.astype(np.float64)), precision)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcast(name, precision, mil_tmp):
    builder, ref = BINARY[name]
    prog = k.load(k.build(mil_tmp, lambda x, y: builder(x, y), {"x": SHAPE, "y": [4, 1]}, precision=precision))
    x = k.rng(2).uniform(0.5, 2, SHAPE).astype(np.float32)
    y = k.rng(3).uniform(0.5, 2, [4, 1]).astype(np.float32)
    f = (lambda a: a.astype(np.float16).astype(np.float64)) if precision == "fp16" else (lambda a: a.astype(np.float64))
    (got,) = prog.run({"x": x, "y": y}).values()
    _check(got, ref(f(x), f(y)), precision)


@pytest.mark.parametrize("name", sorted(COMPARE))
def test_compare_and_select(name, mil_tmp):
    mb = _mb()

    def fn(x, y):
        cond = getattr(mb, name)(x=x, y=y)
        return mb.select(cond=cond, a=x, b=y), mb.cast(x=cond, dtype="int32")

    prog = k.load(k.build(mil_tmp, fn, {"x": [5], "y": [5]}))
    x = np.array([1, 2, 3, 4, 5], np.float32)
    y = np.array([5, 2, 1, 4, 0], np.float32)
    sel, mask = prog.run({"x": x, "y": y}).values()
    want = COMPARE[name](x, y)
    np.testing.assert_array_equal(mask, want.astype(np.int32))
    np.testing.assert_array_equal(sel, np.where(want, x, y))


def test_logical_ops(mil_tmp):
    mb = _mb()

    def fn(x, y):
        a, b = mb.greater(x=x, y=0.0), mb.greater(x=y, y=0.0)
        return tuple(mb.cast(x=v, dtype="int32") for v in
                     (mb.logical_and(x=a, y=b), mb.logical_or(x=a, y=b), mb.logical_not(x=a)))

    prog = k.load(k.build(mil_tmp, fn, {"x": [4], "y": [4]}))
    x, y = np.array([1, 1, -1, -1], np.float32), np.array([1, -1, 1, -1], np.float32)
    got = list(prog.run({"x": x, "y": y}).values())
    np.testing.assert_array_equal(got[0], [1, 0, 0, 0])
    np.testing.assert_array_equal(got[1], [1, 1, 1, 0])
    np.testing.assert_array_equal(got[2], [0, 0, 1, 1])
