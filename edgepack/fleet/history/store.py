"""``History``: what the monitor stores (``add``) and what ``edgepack fleet`` reads back (``status``,
``history``, ``drift``), plus retention and downsampling (``maintain``). Orderings that depend on text are
done here in Python, never by the database, so SQLite and PostgreSQL answer byte for byte the same.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ..devicerow import SERIES, apply_message, new_row
from ..fleetdrift import fleet_report
from ..fleetstate import public, sort_rows
from ..messages import Message
from .db import Database
from .schema import INSERT_MESSAGE, UPSERT_LATEST

__all__ = ["History", "HistorySettings"]

HOUR, DAY = 3600.0, 86400.0


@dataclass
class HistorySettings:
    """Retention and downsampling: everything older than ``max_age`` seconds is deleted; raw messages are kept
    ``raw_age`` seconds, after which their figures become means over ``bucket``-second buckets."""
    max_age: float = 30 * DAY
    raw_age: float = 48 * HOUR
    bucket: int = 60
    maintain_every: float = 600.0      # how often a monitor runs ``maintain`` (seconds)

    def __post_init__(self):
        if not (0 < self.raw_age <= self.max_age) or self.bucket < 1:
            raise ValueError(f"history settings need 0 < raw_age <= max_age and bucket >= 1, not "
                             f"raw_age={self.raw_age!r}, max_age={self.max_age!r}, bucket={self.bucket!r}")


def _figures(m: Message) -> dict:
    """The numeric figures a message carries (``SERIES`` names), as the live view reads them."""
    if m.kind not in ("telemetry", "drift"):
        return {}
    return {metric: value for metric, _, value in apply_message(new_row(m.fleet, m.device), m)}


def _latest_kinds(m: Message, t: dict | None) -> list[str]:
    """The ``latest`` rows a message may renew: its kind's, and for telemetry also the newest one with calls
    (``telemetry@busy``: latency figures) and with cost figures (``telemetry@cost``), since the live view keeps
    the last measured figures through idle periods and ``status`` must fold to the same row."""
    if t is None:
        return [m.kind]
    kinds = ["telemetry"]
    if t.get("calls"):
        kinds.append("telemetry@busy")
    if t.get("cost_per_1k") is not None or t.get("energy_j_per_1k") is not None:
        kinds.append("telemetry@cost")
    return kinds


def _text(m: Message) -> str:
    return m.payload.decode() if m.payload else json.dumps(m.body, sort_keys=True, separators=(",", ":"))


class History:
    """``h = open_history("sqlite:///fleet.db")``; ``h.add(messages)``; ``h.status()``; ``h.close()``."""

    def __init__(self, db: Database, settings: HistorySettings | None = None):
        self.db, self.settings = db, settings or HistorySettings()
        self.url = db.url

    # writing -----------------------------------------------------------------------------
    def add(self, msgs: list[Message], *, figures: list[dict | None] | None = None) -> int:
        """Store a batch in one transaction (duplicates are kept once); returns how many were given.
        ``figures``: each message's series values when the caller has them already (the live view's)."""
        rows, latest = [], {}
        for i, m in enumerate(msgs):
            t = m.body.get("telemetry") if m.kind == "telemetry" else None
            seq = m.seq if m.seq is not None else -1 if m.body.get("state") == "online" else -2   # state: none
            text = _text(m)
            known = figures[i] if figures is not None and figures[i] is not None else _figures(m)
            rows.append((m.fleet, m.device, m.kind, seq, m.ts, m.received, t and t.get("model"),
                         t and t.get("model_version"), t and t.get("bundle_sha256"), text,
                         *(known.get(name) for name in SERIES)))
            for kind in _latest_kinds(m, t):
                key, row = (m.fleet, m.device, kind), (m.fleet, m.device, kind, seq, m.ts, m.received, text)
                old = latest.get(key)
                if old is None or m.kind == "state" or seq > old[3]:
                    latest[key] = row
        with self.db.transaction():
            self.db.insert_rows(INSERT_MESSAGE, rows)
            self.db.insert_rows(UPSERT_LATEST, [latest[k] for k in sorted(latest)])  # one lock order: no deadlock
        return len(msgs)

    # reading -----------------------------------------------------------------------------
    def status(self, fleet: str | None = None, *, model: str | None = None, sort: str = "device") -> list[dict]:
        """One row per device, the same fields as ``FleetState.snapshot()["devices"]`` (``replayed`` is None:
        only a live monitor sees resends); ``messages`` and ``lost`` count the raw messages still kept."""
        where, args = (" WHERE fleet = ?", (fleet,)) if fleet is not None else ("", ())
        latest = self.db.query(f"SELECT fleet, device, kind, seq, ts, received, body FROM latest{where}", args)
        counts = {(f, d): (n, k, lo, hi, seen) for f, d, n, k, lo, hi, seen in self.db.query(
            "SELECT fleet, device, COUNT(*), SUM(CASE WHEN seq >= 0 THEN 1 ELSE 0 END), "
            f"MIN(CASE WHEN seq >= 0 THEN seq END), MAX(seq), MAX(ts) FROM messages{where} GROUP BY fleet, device",
            args)}
        # per device: state first, then the other kinds in the device's own order (seq), as the live view saw them
        latest.sort(key=lambda r: (r[0], r[1], r[2] != "state", r[3] if r[2] != "state" else r[5], r[2]))
        rows: dict[tuple, dict] = {}
        for f, d, kind, seq, ts, received, body in latest:
            row = rows.get((f, d)) or rows.setdefault((f, d), new_row(f, d))
            apply_message(row, Message(f, d, kind.split("@")[0], ts, None if seq < 0 else seq, json.loads(body),
                                       received))
        out = []
        for key, row in rows.items():
            n, k, lo, hi, seen = counts.get(key, (0, 0, None, None, None))
            row.update(messages=n, lost=(hi - lo + 1 - k) if k else 0, replayed=None)
            if seen is not None and (row["last_seen"] is None or seen > row["last_seen"]):
                row["last_seen"] = seen              # a state message (by arrival in latest) may be newer
            if model is None or row["model"] == model:
                out.append(public(row))
        return sort_rows(out, sort)

    def history(self, device: str, metric: str, *, since: float | None = None, until: float | None = None,
                fleet: str | None = None) -> list[tuple[float, float]]:
        """``(ts, value)`` of one device's metric (one of ``SERIES``), oldest first: raw figures while they are
        kept (``raw_age``), per-bucket means after."""
        if metric not in SERIES:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(SERIES)}")
        raw_sql, raw_args = f"SELECT ts, {metric} FROM messages WHERE device = ? AND {metric} IS NOT NULL", [device]
        old_sql, old_args = "SELECT ts, value FROM buckets WHERE device = ? AND metric = ?", [device, metric]
        for cond, value in (("fleet = ?", fleet), ("ts >= ?", since), ("ts < ?", until)):
            if value is not None:
                raw_sql, raw_args = f"{raw_sql} AND {cond}", raw_args + [value]
                old_sql, old_args = f"{old_sql} AND {cond}", old_args + [value]
        rows = self.db.query(old_sql, old_args) + self.db.query(raw_sql, raw_args)
        return sorted((float(ts), float(v)) for ts, v in rows)

    def metrics(self, device: str, fleet: str | None = None) -> list[str]:
        """The metrics stored for one device."""
        where, args = ("device = ?", [device]) if fleet is None else ("device = ? AND fleet = ?", [device, fleet])
        counts = self.db.query(f"SELECT {', '.join(f'COUNT({m})' for m in SERIES)} FROM messages WHERE {where}", args)
        found = {m for m, n in zip(SERIES, counts[0]) if n}
        found |= {r[0] for r in self.db.query(f"SELECT DISTINCT metric FROM buckets WHERE {where}", args)}
        return sorted(found)

    def drift_entries(self, fleet: str | None = None, model: str | None = None,
                      since: float | None = None) -> list[dict]:
        """Device drift windows: the newest per device, or every one since ``since``; each tagged with the model
        and bundle of the device's telemetry at that time (a drift summary does not name them)."""
        if since is None:
            sql, args = "SELECT fleet, device, ts, body FROM latest WHERE kind = 'drift'", []
        else:
            sql, args = "SELECT fleet, device, ts, body FROM messages WHERE kind = 'drift' AND ts >= ?", [since]
        if fleet is not None:
            sql, args = sql + " AND fleet = ?", args + [fleet]
        out = []
        for f, d, ts, body in sorted(self.db.query(sql, args)):
            tag = self._model_at(f, d, ts)
            if model is None or tag[0] == model:
                out.append({"device": d, "fleet": f, "ts": ts, "model": tag[0], "version": tag[1],
                            "bundle_sha256": tag[2], "summary": json.loads(body)["drift"]})
        return out

    def _model_at(self, fleet: str, device: str, ts: float) -> tuple:
        found = self.db.query("SELECT model, version, bundle_sha256 FROM messages WHERE fleet = ? AND device = ? "
                              "AND kind = 'telemetry' AND ts <= ? ORDER BY ts DESC LIMIT 1", (fleet, device, ts))
        if found:
            return found[0]
        last = self.db.query("SELECT body FROM latest WHERE fleet = ? AND device = ? AND kind = 'telemetry'",
                             (fleet, device))
        t = json.loads(last[0][0])["telemetry"] if last else {}
        return t.get("model"), t.get("model_version"), t.get("bundle_sha256")

    def drift(self, fleet: str | None = None, model: str | None = None, *, baseline=None,
              since: float | None = None, thresholds=None) -> dict:
        """Fleet drift from the stored device summaries (see ``fleetdrift.fleet_report``)."""
        entries = self.drift_entries(fleet, model or getattr(baseline, "model", None), since)
        return fleet_report(entries, baseline=baseline, thresholds=thresholds)

    # upkeep ------------------------------------------------------------------------------
    def maintain(self, now: float | None = None) -> dict:
        """Apply retention and downsampling now; returns what was done (rows per table)."""
        from .upkeep import maintain
        return maintain(self.db, self.settings, time.time() if now is None else now)

    def alive(self) -> bool:
        """Whether the database answers."""
        return self.db.alive()

    def reconnect(self) -> None:
        """Open a new connection (the writer calls it after a failed write)."""
        self.db.reconnect()

    def close(self) -> None:
        self.db.close()
