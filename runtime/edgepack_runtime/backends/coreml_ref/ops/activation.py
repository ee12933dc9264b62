"""Activations: relu family, sigmoid family, tanh, gelu, softmax, softplus."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ._util import axis_of, channel_shape, erf, fval


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


@op("relu")
def relu(x):
    return np.maximum(x, 0)


@op("relu6")
def relu6(x):
    return np.clip(x, 0, 6)


@op("leaky_relu")
def leaky_relu(x, alpha=0.01):
    return np.where(x >= 0, x, x * fval(alpha))


@op("prelu")
def prelu(x, alpha):
    return np.where(x >= 0, x, x * channel_shape(alpha, x.ndim))


@op("elu")
def elu(x, alpha=1.0):
    return np.where(x > 0, x, fval(alpha) * np.expm1(np.minimum(x, 0)))


@op("thresholded_relu")
def thresholded_relu(x, alpha=1.0):
    return np.where(x > fval(alpha), x, 0)


@op("clip")
def clip(x, alpha, beta):
    return np.minimum(np.maximum(x, alpha), beta)


@op("sigmoid")
def sigmoid(x):
    return _sigmoid(x)


@op("sigmoid_hard")
def sigmoid_hard(x, alpha=0.2, beta=0.5):
    return np.clip(fval(alpha) * x + fval(beta), 0, 1)


@op("silu")
def silu(x):
    return x * _sigmoid(x)


@op("tanh")
def tanh(x):
    return np.tanh(x)


@op("scaled_tanh")
def scaled_tanh(x, alpha=1.0, beta=1.0):
    return fval(alpha) * np.tanh(fval(beta) * x)


@op("linear_activation")
def linear_activation(x, alpha, beta=0.0):
    return fval(alpha) * x + fval(beta)


@op("gelu")
def gelu(x, mode="EXACT"):
    if mode == "EXACT":
        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(1.702 * x)
    raise ValueError(f"unknown gelu mode {mode!r}")


@op("softmax")
def softmax(x, axis=-1):
    a = axis_of(axis, x.ndim)
    e = np.exp(x - np.max(x, axis=a, keepdims=True))
    return e / np.sum(e, axis=a, keepdims=True)


@op("softplus")
def softplus(x):
    return np.logaddexp(0.0, x)


@op("softplus_parametric")
def softplus_parametric(x, alpha, beta):
    return channel_shape(alpha, x.ndim) * np.logaddexp(0.0, channel_shape(beta, x.ndim) * x)


@op("softsign")
def softsign(x):
    return x / (1.0 + np.abs(x))
