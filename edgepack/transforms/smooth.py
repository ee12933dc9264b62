"""Activation smoothing (Xiao et al., "SmoothQuant", 2022), on the ONNX graph.

A few channels of a transformer's LayerNorm output are often 10-100x larger than the rest, so one
per-tensor int8 scale leaves the others a handful of levels. Per channel ``k`` of such an activation ``X``
feeding MatMul / Gemm with constant weights ``W`` we divide ``X[..., k]`` by ``s[k]`` and multiply row ``k``
of every ``W`` by it: ``(X / s) (diag(s) W) = X W``. The division is folded into the producer, a
LayerNormalization's scale and bias, so no op is added. When the LayerNorm's output also feeds other
ops (the residual Add), the LayerNorm is duplicated: the copy with the smoothed scale feeds the matmuls.

``s = max|X_k|^alpha / max|W_k|^(1 - alpha)``; ``alpha`` is chosen per activation from ``ALPHAS`` by the
simulated int8 error of the matmuls on the calibration samples (per-tensor activations, per-channel
weights); no smoothing when none beats the unsmoothed error.
"""
from __future__ import annotations

import numpy as np
import onnx

from .graph import Graph, attr
from .stats import fake_quant_activation, fake_quant_weight, observe

ALPHAS = (0.3, 0.5, 0.7, 0.85)
MAX_ROWS = 4096
S_LIMIT = (1e-4, 1e4)


def _weight(g: Graph, node: onnx.NodeProto, x: str) -> np.ndarray | None:
    """The [K, N] constant weight a MatMul / Gemm applies to ``x`` (None when it is not one)."""
    if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2 or node.input[0] != x:
        return None
    if not g.private(node.input[1]) or node.input[1] == x:
        return None
    w = g.const(node.input[1])
    if w is None or w.ndim != 2:
        return None
    if node.op_type == "Gemm":
        if attr(node, "transA", 0):
            return None
        return w.T if attr(node, "transB", 0) else w
    return w


def candidates(g: Graph) -> list[tuple[onnx.NodeProto, list[onnx.NodeProto]]]:
    """(LayerNormalization over the last axis, the matmuls with constant weights it feeds)."""
    out = []
    for ln in g.g.node:
        if ln.op_type != "LayerNormalization" or len(ln.input) < 2 or attr(ln, "axis", -1) != -1:
            continue
        gamma = g.const(ln.input[1])
        beta = g.const(ln.input[2]) if len(ln.input) > 2 and ln.input[2] else None
        if gamma is None or gamma.ndim != 1 or (len(ln.input) > 2 and ln.input[2] and beta is None):
            continue
        mms = [n for n in g.users.get(ln.output[0], []) if _weight(g, n, ln.output[0]) is not None]
        if mms and all(_weight(g, n, ln.output[0]).shape[0] == gamma.size for n in mms):
            out.append((ln, mms))
    return out


def _error(x: np.ndarray, ws: list[np.ndarray], s: np.ndarray) -> float:
    xq = fake_quant_activation(x / s)
    total = 0.0
    for w in ws:
        ref = x @ w
        got = xq @ fake_quant_weight(w * s[:, None], axis=1)
        total += float(((got - ref) ** 2).sum() / max((ref ** 2).sum(), 1e-30))
    return total / len(ws)


def choose(x: np.ndarray, ws: list[np.ndarray]) -> tuple[float | None, np.ndarray, dict]:
    """(alpha or None, scales, simulated relative error per alpha) for activation rows ``x`` [rows, K]."""
    a_max = np.maximum(np.abs(x).max(axis=0), 1e-8)
    w_max = np.maximum(np.max([np.abs(w).max(axis=1) for w in ws], axis=0), 1e-8)
    errors = {"none": _error(x, ws, np.ones(x.shape[1], np.float32))}
    best = (errors["none"], None, np.ones(x.shape[1], np.float32))
    for alpha in ALPHAS:
        s = np.clip(a_max ** alpha / w_max ** (1 - alpha), *S_LIMIT).astype(np.float32)
        s /= np.exp(np.log(s).mean())          # keep the overall magnitude where it was
        errors[str(alpha)] = err = _error(x, ws, s)
        if err < best[0] * 0.98:
            best = (err, alpha, s)
    return best[1], best[2], errors


def _apply(g: Graph, ln: onnx.NodeProto, mms: list[onnx.NodeProto], s: np.ndarray) -> bool:
    """Fold 1/s into (a copy of) the LayerNorm and s into the matmul weights; True when a copy was made."""
    x = ln.output[0]
    shared = len(g.users[x]) > len(mms) or x in g.outputs
    target = ln
    if shared:
        target = onnx.NodeProto()
        target.CopyFrom(ln)
        target.name = g.unique(ln.name + "_smoothed")
        del target.output[:]
        target.output.append(g.unique(x + "_smoothed"))
        for i in range(1, len(target.input)):
            if target.input[i]:
                target.input[i] = g.add_const(g.unique(ln.input[i] + "_smoothed"), g.const(ln.input[i]))
        g.g.node.insert(list(g.g.node).index(ln) + 1, target)
        for vi in list(g.g.value_info) + list(g.g.output):
            if vi.name == x:                # converters read every tensor's shape from value_info
                g.g.value_info.add().CopyFrom(vi)
                g.g.value_info[-1].name = target.output[0]
                break
        for mm in mms:
            mm.input[0] = target.output[0]
    for i in range(1, len(target.input)):
        if target.input[i]:
            g.set(target.input[i], g.const(target.input[i]) / s)
    for mm in mms:
        w = g.const(mm.input[1])
        transposed = mm.op_type == "Gemm" and attr(mm, "transB", 0)
        g.set(mm.input[1], w * s[None, :] if transposed else w * s[:, None])
    g.refresh()
    return shared


def smooth(model: onnx.ModelProto, samples: list[dict]) -> dict:
    """Smooth every LayerNorm -> matmuls group where the simulated int8 error drops; edits ``model``."""
    g = Graph(model)
    found = candidates(g)
    rows: dict[str, list[np.ndarray]] = {}

    def visit(name, value):
        v = np.asarray(value, np.float32)
        rows.setdefault(name, []).append(v.reshape(-1, v.shape[-1]))

    observe(model, samples, [ln.output[0] for ln, _ in found], visit)
    groups = []
    for ln, mms in found:
        x = np.concatenate(rows[ln.output[0]])
        if len(x) > MAX_ROWS:
            x = x[np.random.default_rng(0).choice(len(x), MAX_ROWS, replace=False)]
        alpha, s, errors = choose(x, [_weight(g, mm, ln.output[0]) for mm in mms])
        entry = {"layernorm": ln.name, "matmuls": len(mms), "alpha": alpha,
                 "simulated_error": {k: round(v, 6) for k, v in errors.items()}}
        if alpha is not None:
            entry["duplicated"] = _apply(g, ln, mms, s)
        groups.append(entry)
    return {"candidates": len(found), "smoothed": sum(e["alpha"] is not None for e in groups), "groups": groups}
