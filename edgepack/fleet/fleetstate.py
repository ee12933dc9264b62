"""The live view of a fleet, fed message by message (``apply``) and read by the monitor, the web page and
``fleet status`` (``snapshot``, ``series``). Thread-safe; memory bounded (the figures of the last
``series_len`` telemetry and drift messages per device, ``max_devices`` devices).

Online/offline comes only from the retained ``state`` messages (birth and last will), in arrival order: a
will carries the time its connection was made, so timestamps cannot order it against the birth. A device
that sent telemetry but never a ``state`` message is listed with ``online: null`` ("unknown"): it talks to
the broker without the agent's link (or its birth was lost), which an operator should see, not guess.
"""
from __future__ import annotations

import threading
from collections import deque

from .devicerow import SERIES, apply_message, fresh, new_row
from .messages import Message

__all__ = ["FleetState", "SERIES", "SORT_KEYS", "sort_rows"]

SORT_KEYS = ("device", "fleet", "online", "model", "version", "backend", "p50_ms", "p95_ms", "throughput",
             "error_rate", "drift_alerts", "ota_state", "last_seen", "cost_per_1k", "energy_j_per_1k")


def sort_rows(rows: list[dict], sort: str = "device") -> list[dict]:
    """Rows sorted by ``sort`` (``-key``: descending), ties by device and fleet; rows without the figure last."""
    key = sort.lstrip("-")
    if key not in SORT_KEYS:
        raise ValueError(f"cannot sort by {key!r}; choose one of {', '.join(SORT_KEYS)}")
    rows = sorted(rows, key=lambda r: (r["device"], r["fleet"]))
    known = [r for r in rows if r.get(key) is not None]
    known.sort(key=lambda r: r[key], reverse=sort.startswith("-"))
    return known + [r for r in rows if r.get(key) is None]


class FleetState:
    """``state.apply(message)``; ``state.snapshot(fleet=..., model=..., sort="p95_ms")``; ``state.series(d, m)``."""

    def __init__(self, *, series_len: int = 720, max_devices: int = 100_000, counters=None):
        self.series_len, self.max_devices = series_len, max_devices
        self._rows: dict[tuple[str, str], dict] = {}
        self._series: dict[tuple[str, str], deque] = {}   # (fleet, device) -> (ts, {metric: value}) per message
        self._fleets: dict[str, list[str]] = {}                       # device -> the fleets it appears in
        self._lock = threading.Lock()
        self._counters = counters           # a callable returning the ingest counters (the Gate's), if any
        self.applied = 0

    def apply(self, msg: Message) -> list[tuple[str, float, float]] | None:
        """Fold one accepted message into its device's row and time series; returns the series points it gave
        (``(metric, ts, value)``), or None when it was no news (a resend, a retained message again)."""
        with self._lock:
            row = self._rows.get(msg.key)
            if row is None:
                if len(self._rows) >= self.max_devices:
                    return None
                row = self._rows[msg.key] = new_row(msg.fleet, msg.device)
                self._series[msg.key] = deque(maxlen=self.series_len)
                self._fleets.setdefault(msg.device, []).append(msg.fleet)
            if not fresh(row, msg):
                return None
            points = apply_message(row, msg)
            if points:
                self._series[msg.key].append((msg.ts, {metric: value for metric, _, value in points}))
            self.applied += 1
            return points

    def snapshot(self, *, fleet: str | None = None, model: str | None = None, sort: str = "device") -> dict:
        """Every device (filtered by fleet and model, sorted by ``sort``, ``-`` for descending) and the counters."""
        with self._lock:
            rows = [public(r) for r in self._rows.values()
                    if (fleet is None or r["fleet"] == fleet) and (model is None or r["model"] == model)]
        rows = sort_rows(rows, sort)
        counters = self._counters() if self._counters else {"accepted": self.applied, "rejected": {}}
        return {"devices": rows, "counters": counters}

    def series(self, device: str, metric: str, *, since: float | None = None,
               fleet: str | None = None) -> list[tuple[float, float]]:
        """``(ts, value)`` points of one device's metric (one of ``SERIES``), oldest first."""
        with self._lock:
            points = []
            for f in self._fleets.get(device, ()):
                if fleet is None or f == fleet:
                    points.extend((ts, v[metric]) for ts, v in self._series[(f, device)] if metric in v)
        points.sort()
        return [p for p in points if since is None or p[0] >= since]

    def device(self, device: str, fleet: str | None = None) -> dict | None:
        """One device's row (with its last drift summary), or None."""
        with self._lock:
            for f in self._fleets.get(device, ()):
                if fleet is None or f == fleet:
                    row = self._rows[(f, device)]
                    return dict(public(row), drift=row.get("_drift"))
        return None

    def __len__(self) -> int:
        return len(self._rows)

    def drift_summaries(self, *, fleet: str | None = None, model: str | None = None) -> list[dict]:
        """The last drift summary of every device (with its model, version and bundle_sha256)."""
        with self._lock:
            return [{"device": r["device"], "fleet": r["fleet"], "model": r["model"], "version": r["version"],
                     "bundle_sha256": r.get("_drift_sha"), "summary": r["_drift"]}
                    for r in self._rows.values() if r.get("_drift") is not None
                    and (fleet is None or r["fleet"] == fleet) and (model is None or r["model"] == model)]


def public(row: dict) -> dict:
    """A row without its private fields (those starting with ``_``)."""
    return {k: v for k, v in row.items() if not k.startswith("_")}
