"""What the rollout sees of its devices: a listener on the monitor's ingest (``Monitor.add_listener``).

Messages arrive already checked by the monitor's parser (``messages.parse``). Per device it keeps the
retained announcement (``state``), the last ``ota/status`` (a shadow's status, ``mode`` ``shadow``, apart: it
names the candidate, not the model served), every telemetry period (end ``ts`` and start
``ts - period_s`` on the device's clock, calls, errors, p95, model version and manifest sha256) and every
drift window (``ts``, alerts). Telemetry resent after a reconnect (a ``seq`` seen before) is counted once.

Which model a figure belongs to is decided on the device's own clock: a telemetry period belongs to the new
model when it *started* after the device reported the update ``committed`` (so a period that straddles the
switch is left out) and names the new bundle; a drift window when it was published after that (the agent
starts a fresh drift monitor with the new bundle's baseline when it switches).
"""
from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

MAX_KEPT = 100_000     # periods (and drift windows) kept per device
SERVED = ("committed", "rolled_back")    # OTA states whose status names the model the device serves


@dataclass(frozen=True)
class Period:
    ts: float
    start: float
    calls: int
    errors: int
    p95: float | None
    model: str | None         # name@version
    sha: str | None


@dataclass(frozen=True)
class Window:
    ts: float
    alerts: int
    calls: int


class Observer:
    """Thread-safe: ``on_message`` runs on the ingest thread, the rest on the rollout's."""

    def __init__(self, fleet: str):
        self.fleet = fleet
        self._lock = threading.Lock()
        self.announce: dict[str, dict] = {}
        self.ota: dict[str, dict] = {}
        self.shadow_status: dict[str, dict] = {}
        self.commits: dict[str, list[tuple[float, str | None]]] = {}
        self._periods: dict[str, deque] = {}
        self._windows: dict[str, deque] = {}
        self._seqs: dict[tuple[str, str], set] = {}
        self.last_telemetry: dict[str, dict] = {}

    def on_message(self, msg) -> None:
        if msg.fleet != self.fleet:
            return
        handler = {"state": self._state, "telemetry": self._telemetry, "drift": self._drift,
                   "ota/status": self._ota}.get(msg.kind)
        if handler is not None:
            with self._lock:
                handler(msg)

    def _fresh(self, msg) -> bool:
        seen = self._seqs.setdefault((msg.device, msg.kind), set())
        if msg.seq in seen:
            return False
        seen.add(msg.seq)
        return True

    def _state(self, msg) -> None:
        self.announce[msg.device] = msg.body

    def _telemetry(self, msg) -> None:
        if not self._fresh(msg):
            return
        t = msg.body["telemetry"]
        period = _number(t.get("period_s"))
        calls, errors = t["calls"], sum(t.get("errors", {}).values())
        p95 = float(t["latency_ms"]["p95"]) if calls else None
        rec = Period(msg.ts, msg.ts - period, calls, errors, p95, model_id(t.get("model"), t.get("model_version")),
                     _text(t.get("bundle_sha256")))
        self._periods.setdefault(msg.device, deque(maxlen=MAX_KEPT)).append(rec)
        self.last_telemetry[msg.device] = t

    def _drift(self, msg) -> None:
        if not self._fresh(msg):
            return
        d = msg.body["drift"]
        self._windows.setdefault(msg.device, deque(maxlen=MAX_KEPT)).append(
            Window(msg.ts, len(d.get("alerts", [])), d["calls"]))

    def _ota(self, msg) -> None:
        body = msg.body
        if body.get("mode") == "shadow":        # a shadow's status names the candidate, which does not serve
            self.shadow_status[msg.device] = body
            return
        old = self.ota.get(msg.device)
        if old is not None and _number(old.get("ts")) > _number(body.get("ts")):
            return                              # an older retained status delivered late
        self.ota[msg.device] = body
        if body.get("state") == "committed":
            self.commits.setdefault(msg.device, []).append((_number(body.get("ts")) or msg.ts, _model_id(body)))

    # reading (rollout thread) ----------------------------------------------------------------------
    def devices(self) -> dict[str, dict]:
        """Every device that announced itself in the fleet: id -> its last ``state`` body."""
        with self._lock:
            return dict(self.announce)

    def model(self, device: str) -> str | None:
        """``name@version`` of the model the device serves now, as far as its messages say; None when they say
        nothing yet. Sources, newest (device clock) wins: its telemetry (the served bundle's own fields) and its
        ``ota/status`` in ``committed`` or ``rolled_back`` (the Updater's word on the active slot). Other statuses
        name the bundle being offered or downloaded, not the one served."""
        with self._lock:
            said = []
            st = self.ota.get(device)
            if st is not None and st.get("state") in SERVED and _model_id(st) is not None:
                said.append((_number(st.get("ts")), _model_id(st)))
            t = self.last_telemetry.get(device)
            if t is not None and model_id(t.get("model"), t.get("model_version")) is not None:
                said.append((self._periods[device][-1].ts, model_id(t.get("model"), t.get("model_version"))))
        return max(said)[1] if said else None

    def switched(self, device: str, model: str) -> float | None:
        """Device-clock time of the device's last ``committed`` status naming ``model`` (None: not seen)."""
        with self._lock:
            times = [ts for ts, v in self.commits.get(device, []) if v == model]
        return max(times) if times else None

    def periods(self, device: str, *, since: float | None = None, until: float | None = None,
                sha: str | None = None, not_sha: str | None = None) -> list[Period]:
        """Telemetry periods that started at/after ``since``, ended at/before ``until``, of bundle ``sha``
        (or of any bundle but ``not_sha``)."""
        with self._lock:
            rows = list(self._periods.get(device, ()))
        return [p for p in rows if (since is None or p.start >= since) and (until is None or p.ts <= until)
                and (sha is None or p.sha == sha) and (not_sha is None or p.sha != not_sha)]

    def windows(self, device: str, *, since: float | None = None, until: float | None = None) -> list[Window]:
        with self._lock:
            rows = list(self._windows.get(device, ()))
        return [w for w in rows if (since is None or w.ts >= since) and (until is None or w.ts <= until)]


def _number(value) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok and value >= 0 else 0.0


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def model_id(name, version) -> str | None:
    """``name@version`` (None unless both are strings): how the rollout tells models apart."""
    return f"{name}@{version}" if isinstance(name, str) and isinstance(version, str) else None


def _model_id(status: dict) -> str | None:
    model = status.get("model")
    return model_id(model.get("name"), model.get("version")) if isinstance(model, dict) else None


def history_periods(history, device: str, *, since: float, until: float) -> tuple[list[Period], list[Window]]:
    """A device's telemetry periods and drift windows from the fleet history (``History.history`` series),
    for baselines older than this rollout process. The history keeps rates, not counts: errors are
    recovered as ``rate * calls / (1 - rate)`` (a period with only errors counts one); model unknown."""
    def series(metric):
        return dict(history.history(device, metric, since=since, until=until))
    calls, rates, p95s = series("calls"), series("error_rate"), series("p95_ms")
    periods = []
    for ts in sorted(calls):
        c, r = int(calls[ts]), rates.get(ts, 0.0)
        errors = round(r * c / (1 - r)) if r < 1 else 1
        periods.append(Period(ts, ts, c, errors, p95s.get(ts) if c else None, None, None))
    windows = [Window(ts, int(v), 0) for ts, v in sorted(series("drift_alerts").items())]
    return periods, windows
