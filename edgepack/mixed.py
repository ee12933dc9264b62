"""Automatic mixed precision: which layers to keep in float so the int8 gate passes, and the int8 policies.

``search`` re-orders the debugger's suspects by what keeping each alone in float buys at the model output,
adds them in that order until the gate passes or the budget is spent, then drops layers the gate does not
need. Keeping a layer float keeps its output tensor float, so its consumers read float too.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from .errors import EdgepackError
from .measure import measure


def resolve_keep(names, lowered) -> list[str]:
    """User ``keep_float`` entries may name tensors or ONNX nodes (all outputs of the ops they became)."""
    by_origin: dict[str, list[str]] = {}
    for op in lowered.graph.ops:
        by_origin.setdefault(op.origin, []).extend(op.outputs)
    out = []
    for n in names:
        if n in lowered.graph.tensors:
            out.append(n)
        elif n in by_origin:
            out.extend(t for t in by_origin[n] if lowered.graph.tensors[t].dtype == np.float32)
        else:
            raise EdgepackError(f"--keep-float '{n}' is neither a tensor nor a node of the model",
                                hint="use a node name from `edgepack debug-quant` output")
    return out


POLICIES = ("cpu", "strict")


def policy_float_nodes(model: onnx.ModelProto, policy: str) -> list[str]:
    """ONNX nodes the int8 ``policy`` keeps in float.

    ``cpu`` (LiteRT with XNNPACK): normalization statistics, Softmax, and MatMul of two activations
    (attention). XNNPACK has no int8 kernels for those, so in int8 they fall back to slow reference kernels
    and split the delegated graph (measured on the fitted transformer: 2.4x slower than fp32 all-int8,
    0.91x with these float); and a variance computed in int8 (often E[x^2] - E[x]^2) loses most of its
    bits. Normalization statistics are LayerNormalization nodes and, in decomposed form, every node on a
    path of at most ``STATS_DEPTH`` nodes from a ReduceMean/ReduceSum to a Sqrt, the squaring feeding
    that reduction, and the Reciprocal/Div after the Sqrt. ``strict``: every op that has an int8 kernel is quantized (integer-only accelerators)."""
    if policy not in POLICIES:
        raise EdgepackError(f"int8 policy '{policy}' is not one of {', '.join(POLICIES)}")
    if policy == "strict":
        return []
    consts = {i.name for i in model.graph.initializer}
    out = set()
    for node in model.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax"):
            out.add(node.name)
        elif node.op_type == "MatMul" and not any(i in consts for i in node.input):
            out.add(node.name)
    out.update(_normalization_statistics(model))
    return [n.name for n in model.graph.node if n.name in out]


STATS_DEPTH = 8


def _normalization_statistics(model: onnx.ModelProto) -> set[str]:
    producer = {o: n for n in model.graph.node for o in n.output}
    users: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    found: set[str] = set()
    for sqrt in (n for n in model.graph.node if n.op_type == "Sqrt"):
        # walk back from the Sqrt; keep the nodes on paths that reach a reduction
        paths = [[sqrt]]
        for _ in range(STATS_DEPTH):
            grown = []
            for path in paths:
                for name in path[-1].input:
                    p = producer.get(name)
                    if p is None or p in path:
                        continue
                    if p.op_type in ("ReduceMean", "ReduceSum"):
                        found.update(x.name for x in path + [p])
                        sq = producer.get(p.input[0])     # the squares a variance sums lose most in int8
                        if sq is not None and (sq.op_type == "Pow" or
                                               (sq.op_type == "Mul" and sq.input[0] == sq.input[1])):
                            found.add(sq.name)
                    else:
                        grown.append(path + [p])
            paths = grown[:256]
        if sqrt.name in found:
            found.update(u.name for u in users.get(sqrt.output[0], []) if u.op_type in ("Reciprocal", "Div"))
    return found


class Trial:
    """Builds and measures one candidate: the int8 model with ``keep`` (tensor names) in float."""

    def __init__(self, finish: Callable, low, model: onnx.ModelProto, holdout, reference, thresholds, num_threads):
        self.finish, self.low, self.model = finish, low, model
        self.holdout, self.reference, self.thresholds, self.num_threads = holdout, reference, thresholds, num_threads
        self.tried: list[dict] = []

    def run(self, keep: list[str], n: int | None = None, record: bool = True):
        tm = self.finish(keep)
        samples, reference = self.holdout[:n] if n else self.holdout, self.reference[:n] if n else self.reference
        figures = measure(tm.data, self.low.io, self.model, samples, reference, self.thresholds, self.num_threads)
        if record:
            self.tried.append(_attempt(keep, figures, tm))
        return tm, figures


def search(trial: Trial, keep: list[str], pinned, ranked: list[dict], max_fraction: float, tm, figures,
           progress: Callable[[str], None] = lambda s: None):
    """(keep, model, figures) after mixed precision; the best attempt if the gate is never met."""
    candidates = [r for r in ranked if r["tensor"] not in keep]
    budget = max(1, int(max_fraction * len(candidates)))
    progress("gate failed: measuring how much each suspect layer costs")
    best = (keep, tm, figures)
    order = _by_sensitivity(trial, keep, candidates)
    k = 1
    while k <= min(budget, len(order)) and not figures["passed"]:
        extra = [r["tensor"] for r in order[:k]]
        progress(f"gate failed: keeping {len(keep) + k} layer(s) in float")
        tm, figures = trial.run(keep + extra)
        if _score(figures) > _score(best[2]):
            best = (keep + extra, tm, figures)
        if figures["passed"]:
            keep = keep + extra
            break
        k = k + 1 if k < 4 else max(k + 1, int(k * 1.5))
    if not figures["passed"]:      # budget spent: ship (with --allow-mismatch) the best attempt seen
        return best
    if len(keep) > 1:
        keep, tm, figures = _prune(trial, keep, pinned, tm, figures)
    return keep, tm, figures


SENSITIVITY_CANDIDATES = 16    # suspects (by the debugger's ranking) whose float version is measured one by one
SENSITIVITY_SAMPLES = 16


def _by_sensitivity(trial: Trial, keep, candidates):
    """The debugger's suspects re-ordered by what keeping each alone in float buys at the model output
    (SNR on a few held-out samples); the rest follow in the debugger's order."""
    head, tail = candidates[:SENSITIVITY_CANDIDATES], candidates[SENSITIVITY_CANDIDATES:]
    scored = []
    for i, r in enumerate(head):
        _, fig = trial.run(keep + [r["tensor"]], SENSITIVITY_SAMPLES, record=False)
        r["float_gain"] = {"snr_db": fig["min_snr_db"], "cosine": fig["min_cosine"]}
        scored.append((-fig["min_snr_db"], -fig["min_cosine"], i, r))
    return [r for *_, r in sorted(scored, key=lambda x: x[:3])] + tail


def _prune(trial: Trial, keep, pinned, tm, figures):
    """Drop kept-float layers the gate does not need (last added first)."""
    pinned = set(resolve_keep(pinned, trial.low))
    for name in reversed(list(keep)):
        if name in pinned:
            continue
        fewer = [n for n in keep if n != name]
        cand, fig = trial.run(fewer)
        if fig["passed"]:
            keep, tm, figures = fewer, cand, fig
    return keep, tm, figures


def _score(figures) -> tuple:
    return (figures["passed"], -len(figures.get("failed", {})), figures["min_snr_db"], figures["min_cosine"])


def _attempt(keep, figures, tm) -> dict:
    return {"float_layers": len(keep), "passed": figures["passed"], "min_cosine": figures["min_cosine"],
            "min_snr_db": figures["min_snr_db"], "size": len(tm.data)}
