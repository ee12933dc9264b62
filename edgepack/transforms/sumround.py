"""int8 weight rounding that keeps each convolution kernel's sum (data-free), on the ONNX graph.

Rounding every weight of a kernel (one output channel, one input channel, kh x kw weights) to its nearest
symmetric int8 step leaves the kernel's sum off by a random walk of the rounding errors, about
``0.3 * sqrt(kh * kw)`` steps. That sum is the kernel's response to a flat input. A kernel whose weights
nearly cancel (an edge detector: PP-OCRv4 rec's first depthwise 3x3 has weights up to 5.98 summing to
0.003) fed an input with a large constant part (a text line's background, then its zero padding) turns that
error into a large output error: rounding that one layer's weights alone costs rec 13 dB of output SNR.

Here each kernel is rounded to nearest, then the ``k`` weights whose rounding went furthest the wrong way
(``k`` = the sum's error, rounded) move one step the other way, so the integer sum is the float sum to
half a step; no weight moves far from its value, and the output channel's maximum (which sets the
per-channel scale) is untouched. Written back as float weights on the grid (scale ``max|w| / 127``), as ``adaround``
does, so every int8-weight target stores this rounding.

Weights-only SNR (int8 weights, float activations, onnxruntime, 8 held-out inputs; ``benchmarks/
bench_weight_rounding.py``), nearest -> sum_round:
openwakeword embedding 19.8 -> 33.8 dB, PP-OCR cls 41.0 -> 48.5, PP-OCRv4 rec 14.8 -> 19.2, basic-pitch
25.6 -> 26.1, magika 48.0 -> 48.7, PP-OCRv4 det 19.9 -> 19.2 (hence ``auto``: kept only where the target's
all-int8 model does better on the held-out split). Keeping the sums across the input channels of 1x1
convolutions too took rec to 25.1 dB weights-only, but its all-int8 model lost 2 dB: the channels' levels
differ, and that sum is not the response to anything the layer sees.
"""
from __future__ import annotations

import numpy as np
import onnx

from .graph import Graph, conv_weights, set_conv, weight_layers

CHUNK = 512          # output channels sorted at a time (bounds the sort indices' memory on a wide layer)


def round_keeping_sums(w: np.ndarray) -> np.ndarray:
    """``w`` [O, G, K] on the symmetric int8 grid of each output channel (scale ``max|w[o]| / 127``), the sum
    over K of every (o, g) kept to half a step; float32."""
    return _round(w)[0]


def _round(w: np.ndarray) -> tuple[np.ndarray, int, float]:
    """(``round_keeping_sums(w)``, weights moved off nearest, the largest kernel-sum error nearest rounding
    had, in steps)."""
    w = np.asarray(w, np.float64)
    out = np.empty(w.shape, np.float32)
    moved, worst = 0, 0.0
    for lo in range(0, w.shape[0], CHUNK):
        out[lo:lo + CHUNK], m, e = _chunk(w[lo:lo + CHUNK])
        moved, worst = moved + m, max(worst, e)
    return out, moved, worst


def _chunk(w: np.ndarray) -> tuple[np.ndarray, int, float]:
    amax = np.abs(w).max(axis=(1, 2), keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    u = w / scale
    q = np.clip(np.round(u), -127, 127)
    short = u.sum(axis=2) - q.sum(axis=2)                                      # steps each sum is short
    k = np.round(short).astype(np.int64)[..., None]
    frac = u - q                                                               # in [-0.5, 0.5]
    movable = np.abs(u) < 127 - 1e-6                                           # the maximum keeps the scale
    key = np.where(movable, np.where(k > 0, -frac, frac), np.inf)              # most-wrong first
    order = np.argsort(key, axis=2, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(w.shape[2]), w.shape).copy(), axis=2)
    moved = np.clip(q + np.sign(k) * ((rank < np.abs(k)) & movable), -127, 127)
    return ((moved * scale).astype(np.float32), int(np.count_nonzero(moved != q)),
            float(np.abs(short).max(initial=0.0)))


def sum_round(model: onnx.ModelProto) -> dict:
    """Round the weights of every Conv with a spatial kernel (2-D, any group) so that each kernel (one output
    channel, one input channel) keeps its sum; edits ``model``. 1x1 convolutions and MatMuls are left to the
    target: their weights have no spatial sum, and a sum across input channels means nothing when the
    channels' levels differ. Info: layers, weights moved off nearest, the largest kernel-sum error (in steps)
    nearest rounding had."""
    g = Graph(model)
    layers, moved, worst = 0, 0, 0.0
    for node in weight_layers(g):
        w = g.const(node.input[1])
        if node.op_type != "Conv" or w.shape[2] * w.shape[3] == 1:
            continue
        q, m, e = _round(w.reshape(w.shape[0], w.shape[1], -1))
        set_conv(g, node, q.reshape(w.shape), conv_weights(g, node)[1])
        layers, moved, worst = layers + 1, moved + m, max(worst, e)
    return {"layers": layers, "weights_moved": moved, "worst_sum_error_steps": round(worst, 2)}
