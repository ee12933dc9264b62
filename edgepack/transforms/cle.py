"""Cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019), on the ONNX graph.

For a Conv -> [positively homogeneous activation] -> Conv pair, output channel ``c`` of the first conv is
divided by ``s[c]`` (weights and bias) and input channel ``c`` of the second multiplied by it: the float
function is unchanged because Relu, LeakyRelu and PRelu commute with a positive per-channel scale. Choosing
``s = sqrt(r1 * r2) / r2`` (``r``: each channel's weight range) gives both layers the same per-channel
range, which is what per-channel int8 weights of a depthwise conv (one tiny channel next to a huge one,
after BatchNormalization folding) and per-tensor int8 activations need. Chains are handled by iterating.

A Max / Min with a constant between them (openwakeword's ``Max(LeakyRelu(x), -0.4)``) gets the constant
per channel, divided by the same scales. Not through Clip(0, 6) / HardSwish / Sigmoid: they are not
homogeneous (a scaled channel would clip at another value) and Clip takes scalar bounds only, so those pairs
are left alone.
"""
from __future__ import annotations

import numpy as np
import onnx

from .graph import Graph, attr, conv_weights, fold_batchnorm, set_conv

HOMOGENEOUS = ("Relu", "LeakyRelu", "PRelu")
BOUNDS = ("Max", "Min")         # with a constant: the constant is scaled per channel too
ROUNDS = 20
SMALL = 1e-8
S_LIMIT = (1e-3, 1e3)


def pairs(g: Graph) -> list[tuple[onnx.NodeProto, onnx.NodeProto, list[onnx.NodeProto]]]:
    """(first conv, second conv, the element-wise ops between them) triples that can be equalized."""
    out = []
    for first in g.g.node:
        if first.op_type != "Conv" or conv_weights(g, first) is None:
            continue
        chain, tensor = [], first.output[0]
        nxt = g.only_user(tensor)
        while nxt is not None and len(chain) < 3 and _scalable(g, nxt, tensor):
            chain.append(nxt)
            tensor = nxt.output[0]
            nxt = g.only_user(tensor)
        if nxt is None or nxt.op_type != "Conv" or nxt.input[0] != tensor or conv_weights(g, nxt) is None:
            continue
        out.append((first, nxt, chain))
    return out


def _scalable(g: Graph, node: onnx.NodeProto, tensor: str) -> bool:
    """Whether ``node`` commutes with a positive per-channel scale of ``tensor`` (its first input)."""
    if not node.input or node.input[0] != tensor:
        return False
    if node.op_type in ("Relu", "LeakyRelu"):
        return True
    if node.op_type == "PRelu" or node.op_type in BOUNDS:
        c = g.const(node.input[1]) if len(node.input) == 2 else None
        return c is not None and (c.size == 1 or node.op_type in BOUNDS and c.ndim >= 2
                                  and c.shape[1] == c.size)
    return False


def _scale_bounds(g: Graph, chain: list[onnx.NodeProto], s: np.ndarray, rank: int) -> None:
    """Divide the constant of each Max / Min in ``chain`` by ``s`` (made per channel and private first)."""
    for node in chain:
        if node.op_type not in BOUNDS:
            continue
        c = g.const(node.input[1]).reshape(-1)
        shaped = (np.broadcast_to(c, s.shape) / s).reshape(1, -1, *[1] * (rank - 2))
        if not g.private(node.input[1]):
            node.input[1] = g.add_const(g.unique(node.name + "_bound"), shaped)
            g.users[node.input[1]].append(node)
        else:
            g.set(node.input[1], shaped)


def _input_channel_view(w2: np.ndarray, group: int, cin: int) -> list[tuple[slice, int]]:
    """For each input channel c of a grouped conv: (its output-channel slice, its index in the weight)."""
    per_in, per_out = cin // group, w2.shape[0] // group
    return [(slice((c // per_in) * per_out, (c // per_in + 1) * per_out), c % per_in) for c in range(cin)]


def equalize_pair(g: Graph, first: onnx.NodeProto, second: onnx.NodeProto, chain=()) -> float:
    """Equalize one pair in place; the largest relative change of a scale (0 when already equal)."""
    w1, b1 = conv_weights(g, first)
    w2, b2 = conv_weights(g, second)
    cin = w1.shape[0]
    view = _input_channel_view(w2, attr(second, "group", 1), cin)
    r1 = np.abs(w1.reshape(cin, -1)).max(axis=1)
    r2 = np.array([np.abs(w2[outs, idx]).max() for outs, idx in view])
    ok = (r1 > SMALL) & (r2 > SMALL)
    s = np.ones(cin, np.float32)
    s[ok] = np.clip(np.sqrt(r1[ok] * r2[ok]) / r2[ok], *S_LIMIT)
    w1 = w1 / s.reshape(-1, *[1] * (w1.ndim - 1))
    w2 = w2.copy()
    for c, (outs, idx) in enumerate(view):
        w2[outs, idx] *= s[c]
    set_conv(g, first, w1, b1 / s)
    set_conv(g, second, w2, b2)
    _scale_bounds(g, list(chain), s, w1.ndim)
    return float(np.abs(np.log(s)).max()) if cin else 0.0


def spread(g: Graph, node: onnx.NodeProto) -> float:
    """max / min of a conv's per-output-channel weight ranges (what per-channel int8 does not mind but
    per-tensor formats and the next layer's input do)."""
    w, _ = conv_weights(g, node)
    r = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    return float(r.max() / max(r.min(), SMALL))


def equalize(model: onnx.ModelProto) -> dict:
    """Fold BatchNormalization, then equalize every pair until the scales settle. Edits ``model`` in place;
    returns what was done (``pairs``: 0 means the model has nothing to equalize)."""
    # BatchNormalization only: folding the Add / Mul after a conv too opens pairs (PP-OCR cls: 15 instead of
    # 6) whose equalization measured worse in int8 (cls SNR 19.2 -> 15.3 dB), though it is exact in float
    folded = fold_batchnorm(model, affine=False)
    g = Graph(model)
    found = pairs(g)
    rounds = 0
    for rounds in range(1, ROUNDS + 1 if found else 1):
        change = max(equalize_pair(g, a, b, chain) for a, b, chain in found)
        if change < 1e-3:
            break
    return {"pairs": len(found), "rounds": rounds, "batchnorm_folded": folded,
            "through": sorted({op.op_type for _, _, chain in found for op in chain})}
