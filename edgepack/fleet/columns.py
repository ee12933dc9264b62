"""The monitor's columns, formatted once for the terminal table (``tui.py``) and the web page (``web.py``).

A snapshot row (``FleetState.snapshot()["devices"][i]``) becomes a list of short strings, one per column;
``None`` (not reported yet) shows as ``-``. Everything here is plain text: the terminal escapes it for rich
markup, the web page for HTML.
"""
from __future__ import annotations

import math
import time

__all__ = ["COLUMNS", "cells", "columns_for", "counters_line", "fmt_age", "fmt_num", "state_word", "totals"]

# (snapshot key it sorts by, title); "model" shows name and version together
COLUMNS = [("device", "device"), ("fleet", "fleet"), ("online", "state"), ("model", "model"),
           ("backend", "backend"), ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("throughput", "thr/s"),
           ("error_rate", "errors"), ("drift_alerts", "drift"), ("ota_state", "update"),
           ("last_seen", "last seen"), ("cost_per_1k", "cost/1k")]
NUMERIC = {"p50_ms", "p95_ms", "throughput", "error_rate", "drift_alerts", "last_seen", "cost_per_1k"}


def fmt_num(value, digits: int = 1) -> str:
    """A finite number with ``digits`` decimals, 3 significant figures below 1 (0.0123); ``-`` otherwise."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    if value != 0 and abs(value) < 1:
        return f"{value:.3g}"
    return f"{value:,.{digits}f}"


def fmt_age(ts, now: float) -> str:
    """How long ago ``ts`` was: ``4s``, ``3m``, ``2h``, ``5d`` (``-`` when never)."""
    if ts is None or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return "-"
    age = max(0.0, now - ts)
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if age >= span:
            return f"{int(age // span)}{unit}"
    return f"{int(age)}s"


def state_word(online) -> str:
    """``online`` / ``offline`` from the birth and last-will messages; ``unknown`` before either arrived."""
    return "online" if online is True else "offline" if online is False else "unknown"


def _model(row: dict) -> str:
    name, version = row.get("model"), row.get("version")
    if name is None:
        return "-"
    return f"{name} {version}" if version is not None else str(name)


def _drift(row: dict) -> str:
    alerts, psi = row.get("drift_alerts") or 0, row.get("drift_psi")
    text = f"{alerts} alert{'s' if alerts != 1 else ''}" if alerts else "ok" if psi is not None else "-"
    return f"{text} psi {fmt_num(psi, 2)}" if psi is not None else text


def _ota(row: dict) -> str:
    state, progress = row.get("ota_state"), row.get("ota_progress")
    if state is None:
        return "-"
    if isinstance(progress, (int, float)) and not isinstance(progress, bool) and 0 <= progress <= 1:
        return f"{state} {progress:.0%}"
    return str(state)


def columns_for(rows: list[dict]) -> list[tuple[str, str]]:
    """The columns to show: ``cost/1k`` only when some device reports a cost."""
    if any(r.get("cost_per_1k") is not None for r in rows):
        return list(COLUMNS)
    return [c for c in COLUMNS if c[0] != "cost_per_1k"]


def cells(row: dict, columns: list[tuple[str, str]], now: float | None = None) -> list[str]:
    """One row's text per column."""
    now = time.time() if now is None else now
    err = row.get("error_rate")
    text = {"device": str(row.get("device")), "fleet": str(row.get("fleet")), "online": state_word(row.get("online")),
            "model": _model(row), "backend": str(row.get("backend") or "-"), "p50_ms": fmt_num(row.get("p50_ms")),
            "p95_ms": fmt_num(row.get("p95_ms")), "throughput": fmt_num(row.get("throughput")),
            "error_rate": "-" if err is None else f"{err * 100:.1f}%", "drift_alerts": _drift(row),
            "ota_state": _ota(row), "last_seen": fmt_age(row.get("last_seen"), now),
            "cost_per_1k": fmt_num(row.get("cost_per_1k"), 4)}
    return [text[key] for key, _ in columns]


def totals(snapshot: dict) -> dict:
    """Header figures: devices online/total, drift alerts, messages accepted and rejected (by reason)."""
    rows, counters = snapshot.get("devices", []), snapshot.get("counters") or {}
    rejected = counters.get("rejected") or {}
    rejected_n = sum(rejected.values()) if isinstance(rejected, dict) else int(rejected or 0)
    return {"devices": len(rows), "online": sum(1 for r in rows if r.get("online") is True),
            "offline": sum(1 for r in rows if r.get("online") is False),
            "alerts": sum(1 for r in rows if r.get("drift_alerts")),
            "accepted": int(counters.get("accepted") or 0), "rejected": rejected_n,
            "reasons": dict(sorted(((k, v) for k, v in rejected.items() if v), key=lambda kv: -kv[1]))
            if isinstance(rejected, dict) else {}}


def counters_line(snapshot: dict) -> str:
    """``3/4 devices online · 1 with drift alerts · 1,234 messages accepted · 5 rejected (schema 3, flood 2)``."""
    t = totals(snapshot)
    line = (f"{t['online']}/{t['devices']} devices online · {t['alerts']} with drift alerts · "
            f"{t['accepted']:,} messages accepted · {t['rejected']:,} rejected")
    if t["reasons"]:
        line += " (" + ", ".join(f"{k} {v:,}" for k, v in list(t["reasons"].items())[:4]) + ")"
    return line
