"""AdaRound-style rounding (Nagel et al., "Up or Down?", 2020), per layer, numpy, on the ONNX graph.

Rounding each weight to the nearest int8 step is not what keeps a layer's output closest: with the
second moment ``H = E[x x^T]`` of the layer's input (calibration samples, im2col rows for a conv) the
output error of a weight error ``dW`` is ``dW H dW^T``. Each weight may round up or down; a soft choice
``h(V)`` in [0, 1] (rectified sigmoid) is fitted with Adam on that error plus a term that pushes every
``h`` to 0 or 1 as it anneals, then rounded. A layer keeps nearest rounding when the fitted one is not better.

The result is written back as float weights already on the int8 grid of symmetric per-channel int8
(scale ``max|w| / 127``, the elements at the maximum untouched so every target recomputes the same
scale): any int8-weight target then stores exactly this rounding.
"""
from __future__ import annotations

import numpy as np
import onnx

from .graph import Graph, attr, conv_weights, fold_batchnorm, set_conv, weight_layers
from .stats import observe

ZETA, GAMMA = 1.1, -0.1
STEPS, LR, LAMBDA = 300, 0.02, 0.01
MAX_ROWS = 4096


def _h(v):
    return np.clip(1 / (1 + np.exp(-v)) * (ZETA - GAMMA) + GAMMA, 0, 1)


def _error(dw, hess):                     # dw [G, O, D], hess [G, D, D] -> sum of output squared errors
    return float(np.sum((dw @ hess) * dw))


def fit(w: np.ndarray, hess: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(weights on the int8 grid [G, O, D], nearest error, fitted error) for ``w`` [G, O, D]."""
    scale = np.maximum(np.abs(w).max(axis=2, keepdims=True) / 127.0, 1e-12)
    x = w / scale
    base, frac = np.floor(x), x - np.floor(x)
    fixed = np.abs(np.abs(x) - 127) < 1e-6                         # the channel maxima keep their value
    nearest = np.clip(np.round(x), -127, 127) * scale
    e0 = _error(nearest - w, hess)
    v = np.log(np.clip((frac - GAMMA) / (ZETA - GAMMA), 1e-6, 1 - 1e-6) / (1 - np.clip(
        (frac - GAMMA) / (ZETA - GAMMA), 1e-6, 1 - 1e-6)))
    m, s2 = np.zeros_like(v), np.zeros_like(v)
    norm = max(e0, 1e-30)
    for step in range(1, STEPS + 1):
        h = np.where(fixed, frac, _h(v))
        dw = (base + h) * scale - w
        beta = 20 + (2 - 20) * step / STEPS
        t = 2 * h - 1
        g_rec = 2 * (dw @ hess) * scale / norm
        g_reg = -LAMBDA * beta * np.abs(t) ** (beta - 1) * np.sign(t) * 2 / h.size * 1e3
        sig = 1 / (1 + np.exp(-v))
        inside = (h > 0) & (h < 1) & ~fixed
        grad = (g_rec + g_reg) * sig * (1 - sig) * (ZETA - GAMMA) * inside
        m = 0.9 * m + 0.1 * grad
        s2 = 0.999 * s2 + 0.001 * grad ** 2
        v -= LR * (m / (1 - 0.9 ** step)) / (np.sqrt(s2 / (1 - 0.999 ** step)) + 1e-8)
    hard = np.where(fixed, np.round(x), base + (_h(v) >= 0.5))
    rounded = np.clip(hard, -127, 127) * scale
    e1 = _error(rounded - w, hess)
    return (rounded if e1 < e0 else nearest).astype(np.float32), e0, min(e1, e0)


def _cols(x: np.ndarray, node: onnx.NodeProto, groups: int, kernel, rng, rows: int) -> np.ndarray | None:
    """``rows`` random im2col rows of a 2-D conv's input sample ``x`` [1, C, H, W], as [G, rows, D]."""
    pads = attr(node, "pads", [0, 0, 0, 0])
    if attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID") or x.ndim != 4:
        return None
    (sh, sw), (dh, dw) = attr(node, "strides", [1, 1]), attr(node, "dilations", [1, 1])
    xp = np.pad(x[0], ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    kh, kw = kernel
    win = np.lib.stride_tricks.sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    win = win[:, ::sh, ::sw, ::dh, ::dw]                                   # [C, Ho, Wo, kh, kw]
    c, ho, wo = win.shape[:3]
    pick = rng.choice(ho * wo, min(rows, ho * wo), replace=False)
    flat = win.reshape(c, ho * wo, kh * kw)[:, pick]                       # [C, P, k]
    return flat.reshape(groups, c // groups, len(pick), kh * kw).transpose(0, 2, 1, 3).reshape(
        groups, len(pick), -1)


def adaround(model: onnx.ModelProto, samples: list[dict]) -> dict:
    """Fit the int8 rounding of every Conv (2-D) and MatMul with constant weights; edits ``model``."""
    fold_batchnorm(model)
    g = Graph(model)
    layers = weight_layers(g)
    rng = np.random.default_rng(0)
    per = max(MAX_ROWS // max(len(samples), 1), 16)
    hess: dict[str, np.ndarray] = {}
    count: dict[str, int] = {}
    shape = {n.name: g.const(n.input[1]).shape for n in layers}
    by_input: dict[str, list[onnx.NodeProto]] = {}
    for n in layers:
        by_input.setdefault(n.input[0], []).append(n)

    def visit(name, value):
        for node in by_input[name]:
            value = np.asarray(value, np.float32)
            if node.op_type == "Conv":
                cols = _cols(value, node, attr(node, "group", 1), shape[node.name][2:], rng, per)
                if cols is None:
                    continue
            else:
                rows = value.reshape(-1, value.shape[-1])
                cols = rows[rng.choice(len(rows), min(per, len(rows)), replace=False)][None]
            hess[node.name] = hess.get(node.name, 0) + np.transpose(cols, (0, 2, 1)) @ cols
            count[node.name] = count.get(node.name, 0) + cols.shape[1]

    observe(model, samples, sorted(by_input), visit)
    gains = []
    for node in layers:
        if node.name not in hess:
            continue
        w = g.const(node.input[1])
        if node.op_type == "Conv":
            groups = attr(node, "group", 1)
            grouped = w.reshape(groups, w.shape[0] // groups, -1)
        else:
            grouped = w.T[None]
        q, e0, e1 = fit(grouped, hess[node.name] / count[node.name])
        q = q.reshape(w.shape) if node.op_type == "Conv" else q[0].T
        if node.op_type == "Conv":
            set_conv(g, node, q, conv_weights(g, node)[1])
        else:
            g.set(node.input[1], q)
        gains.append(e0 / max(e1, 1e-30))
    return {"layers": len(gains), "median_error_ratio": round(float(np.median(gains)), 3) if gains else 1.0}
