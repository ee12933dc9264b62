"""Data drift: baseline statistics computed at build time, streaming histograms on the device, and
distances between the two (PSI, Jensen-Shannon, KS from binned distributions, class-frequency shift).

Everything a device reports is counts over the baseline's bin edges, so summaries from many devices merge
by adding counts: ``fleet_drift(baseline, summaries)`` computes fleet-wide drift without raw data.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .distance import class_shift, jensen_shannon, ks, psi, significant

__all__ = ["DriftMonitor", "Thresholds", "class_shift", "compute_baseline", "fleet_drift", "jensen_shannon", "judge",
           "ks", "merge_summaries", "psi", "significant"]

BASELINE_VERSION = 1
DEFAULT_BINS = 16


_CHUNK = 1 << 20


def _edges(values: np.ndarray, bins: int) -> list[float]:
    """Quantile bin edges (inner edges only; the outer bins are open-ended). Reorders ``values``."""
    qs = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], overwrite_input=True)
    return sorted({float(q) for q in qs})


def _is_classifier(shape) -> bool:
    dims = [d for d in shape[1:] if d != 1]
    return len(shape) >= 2 and len(dims) == 1 and dims[0] >= 2


def _stats(arrays: list[np.ndarray], bins: int, classifier: bool) -> dict:
    """Exact quantile edges and counts with one float64 copy of the values (was about four at once)."""
    total = sum(int(np.size(a)) for a in arrays)
    flat = np.empty(total, np.float64)                 # one float64 buffer, filled in place (no list of copies)
    pos = 0
    for a in arrays:
        a = np.asarray(a).ravel()
        flat[pos:pos + a.size] = a
        pos += a.size
    finite = np.isfinite(flat)
    if not finite.all():
        flat = flat[finite]
    del finite
    bins = max(2, min(bins, flat.size // 20))
    mean = float(flat.mean()) if flat.size else 0.0   # before the in-place partition: same order, same sum
    sq = sum(float(np.square(flat[i:i + _CHUNK] - mean).sum()) for i in range(0, flat.size, _CHUNK))
    std = float(np.sqrt(sq / flat.size)) if flat.size else 0.0   # chunked: no n-sized temporary
    n = int(flat.size)
    edges = _edges(flat, bins) if flat.size else []
    counts = np.zeros(len(edges) + 1, np.int64)
    for i in range(0, flat.size, _CHUNK):              # int64 bin indices a chunk at a time
        counts += np.bincount(np.searchsorted(edges, flat[i:i + _CHUNK], side="right"), minlength=len(edges) + 1)
    del flat
    out = {"edges": edges, "counts": counts.astype(int).tolist(), "n": n, "mean": mean, "std": std}
    if classifier:
        k = int(np.prod(np.asarray(arrays[0]).shape[1:]))
        top = np.concatenate([np.argmax(np.asarray(a).reshape(-1, k), axis=1) for a in arrays])
        out["classes"] = np.bincount(top, minlength=k).astype(int).tolist()
    return out


def compute_baseline(inputs: list[dict[str, np.ndarray]], outputs: list[dict[str, np.ndarray]], *,
                     bins: int = DEFAULT_BINS) -> dict:
    """Baseline statistics per input and output from calibration samples (JSON-serializable).

    Per tensor: quantile bin edges (at most ``bins`` bins, fewer when there are few values), counts,
    ``n``, mean and std; for classifier-like float outputs ([N, K], K >= 2) the top-1 class counts.
    """
    def side(samples, scores: bool):
        if not samples:
            return {}
        return {name: _stats([s[name] for s in samples], bins,
                             scores and _is_classifier(np.asarray(samples[0][name]).shape)
                             and np.asarray(samples[0][name]).dtype.kind == "f")
                for name in samples[0]}
    return {"version": BASELINE_VERSION, "bins": bins, "samples": len(inputs),
            "inputs": side(inputs, False), "outputs": side(outputs, True)}


@dataclass
class Thresholds:
    psi: float = 0.25
    js: float = 0.1
    ks: float = 0.2
    class_shift: float = 0.2     # total variation distance between class frequencies
    min_samples: int = 100       # values needed in a window before judging
    min_baseline: int = 200      # values the baseline needs before its histogram is trusted
    min_per_class: int = 5       # top-1 counts per class (baseline and window) before judging the class mix
    # a distance must also be significant (chi-square, see ``significant``): short windows are noisy


def judge(name: str, kind: str, stats: dict, counts, class_counts, th: Thresholds) -> tuple[dict, list[str]]:
    """Distances of one tensor's window counts from its baseline ``stats``; returns (entry, metrics crossed)."""
    counts = np.asarray(counts, np.int64)
    n = int(counts.sum())
    entry = {"kind": kind, "counts": counts.tolist(), "n": n, "psi": psi(stats["counts"], counts),
             "js": jensen_shannon(stats["counts"], counts), "ks": ks(stats["counts"], counts)}
    crossed = []
    if n >= th.min_samples and stats.get("n", sum(stats["counts"])) >= th.min_baseline:
        crossed = [m for m in ("psi", "js", "ks") if entry[m] > getattr(th, m)]
        if crossed and not significant(stats["counts"], counts):
            crossed = []
    if class_counts is not None and stats.get("classes") is not None:
        base, cur = np.asarray(stats["classes"]), np.asarray(class_counts, np.int64)
        entry["class_counts"] = cur.tolist()
        entry["class_shift"] = class_shift(base, cur)
        enough = th.min_per_class * len(base)
        if base.sum() >= enough and cur.sum() >= enough and entry["class_shift"] > th.class_shift \
                and significant(base, cur):
            crossed.append("class_shift")
    return entry, crossed


@dataclass
class _Tracker:
    edges: np.ndarray
    classes: int | None
    counts: np.ndarray = field(init=False)
    class_counts: np.ndarray | None = field(init=False)

    def __post_init__(self):
        self.reset()

    def reset(self):
        self.counts = np.zeros(len(self.edges) + 1, np.int64)
        self.class_counts = None if self.classes is None else np.zeros(self.classes, np.int64)

    def add(self, array: np.ndarray, max_values: int) -> None:
        flat = np.asarray(array).reshape(-1)
        sub = flat[::max(1, flat.size // max_values)]      # a strided view: cost bounded per call
        if sub.dtype.kind == "f" and not np.isfinite(sub).all():
            sub = sub[np.isfinite(sub)]
        self.counts += np.bincount(np.searchsorted(self.edges, sub, side="right"), minlength=len(self.counts))
        if self.class_counts is not None:
            top = np.argmax(np.asarray(array).reshape(-1, self.classes), axis=1)
            self.class_counts += np.bincount(top, minlength=self.classes)


class DriftMonitor:
    """Streaming drift against a bundle's baseline over count- or time-bounded windows.

    ``observe(inputs, outputs)`` after an inference (the agent samples calls to keep the cost bounded);
    ``window_full()`` says when to ``summary()`` (which also resets the window). Each observation
    histograms at most ``max_values`` values per tensor (a strided subsample: counts stay mergeable).
    Alerts name every tensor whose distance crosses a threshold. A baseline computed from synthetic
    inputs (``"data": "synthetic"``) says nothing about real traffic: its windows are reported, not judged.
    """

    def __init__(self, baseline: dict, *, window_count: int = 1000, window_seconds: float | None = None,
                 thresholds: Thresholds | None = None, clock=None, max_values: int = 512,
                 judge_synthetic: bool = False):
        import time
        self._clock = clock or time.monotonic
        self.baseline = baseline
        self.thresholds = thresholds or Thresholds()
        self.window_count, self.window_seconds = window_count, window_seconds
        self.max_values = max_values     # values histogrammed per tensor and call (strided subsample)
        self.note = None
        if baseline.get("data") == "synthetic" and not judge_synthetic:
            self.note = ("the drift baseline comes from synthetic inputs, so alerts are off; "
                         "rebuild the bundle with --calibration data")
        self._trackers = {(kind, name): _Tracker(np.asarray(s["edges"], np.float32),
                                                 len(s["classes"]) if s.get("classes") else None)
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
        for (kind, name), t in self._trackers.items():
            entry, crossed = judge(name, kind, self.baseline[kind][name], t.counts, t.class_counts, self.thresholds)
            if crossed and self.note is None:
                alerts.append({"tensor": name, "kind": kind, "metrics": crossed})
            tensors[name] = entry
        out = {"calls": self._calls, "tensors": tensors, "alerts": alerts}
        if self.note:
            out["note"] = self.note
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


def fleet_drift(baseline: dict, summaries: list[dict], thresholds: Thresholds | None = None) -> dict:
    """Drift of many devices together: add their window counts, then judge the sums against the baseline."""
    th = thresholds or Thresholds()
    tensors, alerts = {}, []
    for kind in ("inputs", "outputs"):
        for name, stats in baseline.get(kind, {}).items():
            parts = [s["tensors"][name] for s in summaries if name in s.get("tensors", {})]
            counts = np.sum([p["counts"] for p in parts], axis=0) if parts else np.zeros(len(stats["counts"]), int)
            classes = [p["class_counts"] for p in parts if "class_counts" in p]
            entry, crossed = judge(name, kind, stats, counts, np.sum(classes, axis=0) if classes else None, th)
            tensors[name] = entry
            if crossed:
                alerts.append({"tensor": name, "kind": kind, "metrics": crossed})
    return {"devices": len(summaries), "calls": sum(s.get("calls", 0) for s in summaries),
            "tensors": tensors, "alerts": alerts}
