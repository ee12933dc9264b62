"""Data drift: baseline statistics computed at build time, streaming histograms on the device, and
distances between the two (PSI, Jensen-Shannon, KS from binned distributions, class-frequency shift).

Everything a device reports is counts over the baseline's bin edges, so summaries from many devices merge
by adding counts: the host computes fleet-wide drift without raw data.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BASELINE_VERSION = 1
DEFAULT_BINS = 16
_EPS = 1e-6


def _edges(values: np.ndarray, bins: int) -> list[float]:
    """Quantile bin edges (inner edges only; the outer bins are open-ended)."""
    qs = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(q) for q in qs})


def _is_classifier(shape) -> bool:
    dims = [d for d in shape[1:] if d != 1]
    return len(shape) >= 2 and len(dims) == 1 and dims[0] >= 2


def _stats(arrays: list[np.ndarray], bins: int, classifier: bool) -> dict:
    flat = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
    flat = flat[np.isfinite(flat)]
    edges = _edges(flat, bins) if flat.size else []
    counts = np.bincount(np.searchsorted(edges, flat, side="right"), minlength=len(edges) + 1)
    out = {"edges": edges, "counts": counts.astype(int).tolist(), "n": int(flat.size),
           "mean": float(flat.mean()) if flat.size else 0.0, "std": float(flat.std()) if flat.size else 0.0}
    if classifier:
        k = int(np.prod(np.asarray(arrays[0]).shape[1:]))
        top = [int(np.argmax(np.asarray(a).reshape(-1, k), axis=1)[i])
               for a in arrays for i in range(np.asarray(a).reshape(-1, k).shape[0])]
        out["classes"] = np.bincount(top, minlength=k).astype(int).tolist()
    return out


def compute_baseline(inputs: list[dict[str, np.ndarray]], outputs: list[dict[str, np.ndarray]], *,
                     bins: int = DEFAULT_BINS) -> dict:
    """Baseline statistics per input and output from calibration samples (JSON-serializable)."""
    def side(samples, scores: bool):
        if not samples:
            return {}
        return {name: _stats([s[name] for s in samples], bins,
                             scores and _is_classifier(np.asarray(samples[0][name]).shape)
                             and np.asarray(samples[0][name]).dtype.kind == "f")
                for name in samples[0]}
    return {"version": BASELINE_VERSION, "bins": bins, "samples": len(inputs),
            "inputs": side(inputs, False), "outputs": side(outputs, True)}


def _norm(counts) -> np.ndarray:
    c = np.asarray(counts, np.float64)
    total = c.sum()
    return (c + _EPS) / (total + _EPS * len(c)) if total > 0 else np.full(len(c), 1.0 / max(len(c), 1))


def psi(expected, actual) -> float:
    """Population stability index between two count vectors over the same bins."""
    e, a = _norm(expected), _norm(actual)
    return float(np.sum((a - e) * np.log(a / e)))


def jensen_shannon(expected, actual) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1])."""
    e, a = _norm(expected), _norm(actual)
    m = (e + a) / 2
    return float(0.5 * np.sum(e * np.log2(e / m)) + 0.5 * np.sum(a * np.log2(a / m)))


def ks(expected, actual) -> float:
    """Kolmogorov-Smirnov statistic from binned distributions (max CDF gap at the bin edges)."""
    e, a = _norm(expected), _norm(actual)
    return float(np.max(np.abs(np.cumsum(e) - np.cumsum(a))))


@dataclass
class Thresholds:
    psi: float = 0.25
    js: float = 0.1
    ks: float = 0.2
    class_shift: float = 0.2     # total variation distance between class frequencies
    min_samples: int = 100       # values needed in a window before judging


@dataclass
class _Tracker:
    edges: np.ndarray
    baseline: list[int]
    classes: list[int] | None
    counts: np.ndarray = field(init=False)
    class_counts: np.ndarray | None = field(init=False)

    def __post_init__(self):
        self.reset()

    def reset(self):
        self.counts = np.zeros(len(self.edges) + 1, np.int64)
        self.class_counts = None if self.classes is None else np.zeros(len(self.classes), np.int64)

    def add(self, array: np.ndarray, max_values: int) -> None:
        flat = np.asarray(array).reshape(-1)
        sub = flat[::max(1, flat.size // max_values)]      # a strided view: cost bounded per call
        if sub.dtype.kind == "f" and not np.isfinite(sub).all():
            sub = sub[np.isfinite(sub)]
        self.counts += np.bincount(np.searchsorted(self.edges, sub, side="right"), minlength=len(self.counts))
        if self.class_counts is not None:
            k = len(self.classes)
            top = np.argmax(np.asarray(array).reshape(-1, k), axis=1)
            self.class_counts += np.bincount(top, minlength=k)


class DriftMonitor:
    """Streaming drift against a bundle's baseline over count- or time-bounded windows.

    ``observe(inputs, outputs)`` after an inference (the agent samples calls to keep the cost bounded);
    ``window_full()`` says when to ``summary()`` (which also resets the window). Each observation
    histograms at most ``max_values`` values per tensor (a strided subsample: counts stay mergeable).
    Alerts name every tensor whose distance crosses a threshold.
    """

    def __init__(self, baseline: dict, *, window_count: int = 1000, window_seconds: float | None = None,
                 thresholds: Thresholds | None = None, clock=None, max_values: int = 512):
        import time
        self._clock = clock or time.monotonic
        self.thresholds = thresholds or Thresholds()
        self.window_count, self.window_seconds = window_count, window_seconds
        self.max_values = max_values     # values histogrammed per tensor and call (strided subsample)
        self._trackers = {(kind, name): _Tracker(np.asarray(s["edges"], np.float32), s["counts"], s.get("classes"))
                          for kind in ("inputs", "outputs") for name, s in baseline.get(kind, {}).items()}
        self._calls = 0
        self._started = self._clock()

    def observe(self, inputs: dict, outputs: dict) -> None:
        for (kind, name), tracker in self._trackers.items():
            source = inputs if kind == "inputs" else outputs
            if name in source:
                tracker.add(source[name], self.max_values)
        self._calls += 1

    def window_full(self) -> bool:
        if self.window_seconds is not None and self._clock() - self._started >= self.window_seconds:
            return self._calls > 0
        return self._calls >= self.window_count

    def summary(self, *, reset: bool = True) -> dict:
        """Counts, distances and alerts for the current window (mergeable: counts add up across devices)."""
        tensors, alerts = {}, []
        th = self.thresholds
        for (kind, name), t in self._trackers.items():
            n = int(t.counts.sum())
            entry = {"kind": kind, "counts": t.counts.tolist(), "n": n,
                     "psi": psi(t.baseline, t.counts), "js": jensen_shannon(t.baseline, t.counts),
                     "ks": ks(t.baseline, t.counts)}
            if t.class_counts is not None:
                entry["class_counts"] = t.class_counts.tolist()
                entry["class_shift"] = 0.5 * float(np.abs(_norm(t.classes) - _norm(t.class_counts)).sum())
            crossed = [m for m in ("psi", "js", "ks") if entry[m] > getattr(th, m)]
            if entry.get("class_shift", 0.0) > th.class_shift:
                crossed.append("class_shift")
            if n >= th.min_samples and crossed:
                alerts.append({"tensor": name, "kind": kind, "metrics": crossed})
            tensors[name] = entry
        out = {"calls": self._calls, "tensors": tensors, "alerts": alerts}
        if reset:
            for t in self._trackers.values():
                t.reset()
            self._calls, self._started = 0, self._clock()
        return out


def merge_summaries(summaries: list[dict]) -> dict[str, list[int]]:
    """Fleet view: add the per-tensor counts of many device summaries (same bundle baseline)."""
    total: dict[str, np.ndarray] = {}
    for s in summaries:
        for name, t in s["tensors"].items():
            c = np.asarray(t["counts"], np.int64)
            total[name] = total.get(name, np.zeros_like(c)) + c
    return {k: v.tolist() for k, v in total.items()}

