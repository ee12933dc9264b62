"""Inference metrics without storing samples: a log-bucketed latency histogram and a telemetry collector."""
from __future__ import annotations

import math
import os
import threading
import time

import numpy as np

_LO, _HI, _RATIO = 1e-6, 100.0, 1.1     # 1 us .. 100 s, buckets 10% wide: quantiles within 5%
_N = int(math.ceil(math.log(_HI / _LO) / math.log(_RATIO))) + 2


class LatencyHistogram:
    """Counts per geometric bucket; p50/p95/p99 are read from the cumulative counts."""

    def __init__(self):
        self.counts = np.zeros(_N, np.int64)
        self.total = 0
        self.sum = 0.0

    def add(self, seconds: float) -> None:
        i = 0 if seconds <= _LO else min(_N - 1, 1 + int(math.log(seconds / _LO) / math.log(_RATIO)))
        self.counts[i] += 1
        self.total += 1
        self.sum += seconds

    def quantile(self, q: float) -> float:
        if not self.total:
            return 0.0
        i = int(np.searchsorted(np.cumsum(self.counts), q * self.total))
        return _LO * _RATIO ** (i - 0.5) if i else _LO   # bucket midpoint (geometric)

    def merge(self, other: "LatencyHistogram") -> None:
        self.counts += other.counts
        self.total += other.total
        self.sum += other.sum


try:                 # imported now: importing it later needs a file descriptor, which may have run out
    import resource
except ImportError:  # not on Windows
    resource = None


def rss_bytes() -> int | None:
    """Resident set size of this process (Linux /proc; peak RSS elsewhere; None when neither can be read,
    e.g. while the process has no file descriptor left)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024 if resource else None
    except (OSError, ValueError):
        return None


class Telemetry:
    """Thread-safe per-model counters; ``snapshot()`` returns one period's figures and starts the next.

    Nothing here runs unless an ``Agent`` (or your own code) calls it: ``Runtime`` itself measures nothing.
    """

    def __init__(self, *, backend: str, bundle: dict, bundle_sha256: str | None = None, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.static = {"backend": backend, "model": bundle["model"]["name"],
                       "model_version": bundle["model"]["version"], "bundle_created": bundle.get("created"),
                       "bundle_format": bundle.get("format_version"), "bundle_sha256": bundle_sha256}
        self._reset()

    def _reset(self) -> None:
        self.hist = LatencyHistogram()
        self.errors: dict[str, int] = {}
        self.input_errors = 0
        self.nonfinite_inputs = 0
        self.cache_hits = self.cache_lookups = 0
        self.busy_rejections = 0
        self.requests = 0
        self.started = self._clock()

    def record(self, seconds: float) -> None:
        with self._lock:
            self.hist.add(seconds)

    def error(self, kind: str, *, input_error: bool = False) -> None:
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            self.input_errors += int(input_error)

    def nonfinite(self) -> None:
        """A request whose inputs hold NaN or Inf (served or refused, as the agent is set)."""
        with self._lock:
            self.nonfinite_inputs += 1

    def cache(self, hit: bool) -> None:
        with self._lock:
            self.cache_lookups += 1
            self.cache_hits += int(hit)

    def served(self, n: int = 1) -> None:
        """``n`` requests answered (cache hits and micro-batched requests included; ``calls`` are backend calls)."""
        with self._lock:
            self.requests += n

    def busy(self) -> None:
        with self._lock:
            self.busy_rejections += 1

    def snapshot(self, *, reset: bool = True) -> dict:
        with self._lock:
            elapsed = max(self._clock() - self.started, 1e-9)
            h = self.hist
            out = dict(self.static, calls=h.total, requests=self.requests, period_s=round(elapsed, 3),
                       throughput_per_s=h.total / elapsed,
                       latency_ms={"p50": h.quantile(0.5) * 1e3, "p95": h.quantile(0.95) * 1e3,
                                   "p99": h.quantile(0.99) * 1e3,
                                   "mean": (h.sum / h.total * 1e3) if h.total else 0.0},
                       errors=dict(self.errors), input_errors=self.input_errors,
                       nonfinite_inputs=self.nonfinite_inputs,
                       busy_rejections=self.busy_rejections,
                       cache_hit_rate=(self.cache_hits / self.cache_lookups) if self.cache_lookups else None,
                       rss_bytes=rss_bytes())
            if reset:
                self._reset()
            return out
