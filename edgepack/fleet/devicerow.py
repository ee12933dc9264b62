"""One device's row in the fleet view, and how each kind of message changes it.

The same function folds messages into the live ``FleetState`` and into the history's ``devices`` table, so
``edgepack fleet status`` (from history) and the monitor (live) agree field by field. Fields starting with
``_`` are private (the last drift summary, sequence tracking) and not shown.
"""
from __future__ import annotations

from .messages import Message

__all__ = ["SERIES", "apply_message", "fresh", "new_row"]

# numeric time series kept per device (live: bounded deques; history: the points table)
SERIES = ("p50_ms", "p95_ms", "p99_ms", "throughput", "error_rate", "calls", "drift_psi", "drift_alerts",
          "cost_per_1k", "energy_j_per_1k")
REPLAY_WINDOW = 1000    # a sequence number this far below the last one means the device started counting anew


def new_row(fleet: str, device: str) -> dict:
    """A device seen for the first time: everything unknown (``None``) until its messages say otherwise."""
    return {"device": device, "fleet": fleet, "online": None, "state_ts": None, "model": None, "version": None,
            "backend": None, "profile": None, "bundle_sha256": None, "p50_ms": None, "p95_ms": None,
            "p99_ms": None, "throughput": None, "calls": None, "requests": None, "errors": None,
            "error_rate": None, "drift_alerts": 0, "drift_psi": None, "ota_state": None,
            "ota_update_id": None, "ota_progress": None, "cost_per_1k": None, "energy_j_per_1k": None,
            "busy_share": None,
            "last_event": None, "last_seen": None, "messages": 0, "lost": 0, "replayed": 0,
            "_seq": None, "_kseq": {}, "_ota_seq": None, "_drift": None, "_drift_sha": None}


def apply_message(row: dict, msg: Message) -> list[tuple[str, float, float]]:
    """Fold ``msg`` into ``row`` (in place); returns the series points ``(metric, ts, value)`` it yields."""
    row["messages"] += 1
    if row["last_seen"] is None or msg.ts > row["last_seen"]:
        row["last_seen"] = msg.ts
    return _APPLY[msg.kind](row, msg.body, msg.ts)


def fresh(row: dict, msg: Message) -> bool:
    """Whether ``msg`` is news for ``row``: a kind's message with a ``seq`` at or below the last one of that
    kind is ``replayed`` (resent after a reconnect, or older than what is shown) and changes nothing else; a
    retained message delivered again on subscribing (the same ``state``, an old ``ota/status``) is no news
    either. Gaps in the device's ``seq`` (one counter over all kinds) count as ``lost`` until they arrive late."""
    if msg.kind == "state":
        return not (row["state_ts"] == msg.ts and row["online"] == (msg.body["state"] == "online"))
    seq, last_of_kind = msg.seq, row["_kseq"].get(msg.kind)
    if last_of_kind is not None and last_of_kind - REPLAY_WINDOW <= seq <= last_of_kind:
        if msg.kind != "ota/status":          # retained: delivered again on every subscribe, not a resend
            row["replayed"] += 1
        return False
    row["_kseq"][msg.kind] = seq
    last = row["_seq"]
    if msg.kind == "ota/status" and (last is None or seq <= last):
        return True                            # a retained status may be old: not a base for counting gaps
    if last is None or seq < last - REPLAY_WINDOW:
        row["_seq"] = seq                       # first contact, or the device started counting anew
    elif seq > last:
        row["lost"] += seq - last - 1
        row["_seq"] = seq
    else:
        row["lost"] = max(0, row["lost"] - 1)   # one of a gap, arriving late
    return True


def _state(row: dict, body: dict, ts: float) -> list:
    row["online"] = body["state"] == "online"
    row["state_ts"] = ts
    if body.get("profile") is not None:
        row["profile"] = body["profile"]
    for name in ("model", "version", "backend"):   # telemetry (fresher) wins over the announcement
        if body.get(name) is not None and row[name] is None:
            row[name] = body[name]
    return []


def _telemetry(row: dict, body: dict, ts: float) -> list:
    """A telemetry period. One without backend calls has no latency (the agent reports 0): the row keeps the
    last measured figures and the series get no latency point, only throughput, errors and calls."""
    t = body["telemetry"]
    get = t.get
    errors = get("errors")
    errors = sum(errors.values()) if errors else 0
    calls = t["calls"]
    for field, name in (("model", "model"), ("model_version", "version"), ("backend", "backend"),
                        ("bundle_sha256", "bundle_sha256")):
        value = get(field)
        if value is not None:
            row[name] = value
    throughput, rate = float(t["throughput_per_s"]), errors / (calls + errors) if calls + errors else 0.0
    row.update(throughput=throughput, calls=calls, requests=get("requests"), errors=errors, error_rate=rate)
    points = [("throughput", ts, throughput), ("error_rate", ts, rate), ("calls", ts, float(calls))]
    if calls:
        lat = t["latency_ms"]
        p50, p95, p99 = float(lat["p50"]), float(lat["p95"]), lat.get("p99")
        p99 = None if p99 is None else float(p99)
        row.update(p50_ms=p50, p95_ms=p95, p99_ms=p99)
        points += [("p50_ms", ts, p50), ("p95_ms", ts, p95)]
        if p99 is not None:
            points.append(("p99_ms", ts, p99))
    ota = get("ota")
    if ota and ota.get("state") is not None and _newer_ota(row, body):
        row["ota_state"] = ota["state"]
    busy = get("busy_share")
    if busy is not None:
        row["busy_share"] = float(busy)
    for name in ("cost_per_1k", "energy_j_per_1k"):      # null in a period without predictions: keep the last
        value = get(name)
        if value is not None:
            row[name] = float(value)
            points.append((name, ts, row[name]))
    return points


def _drift(row: dict, body: dict, ts: float) -> list:
    d = body["drift"]
    psis = [t["psi"] for t in d["tensors"].values() if isinstance(t.get("psi"), (int, float))]
    row["drift_alerts"] = len(d.get("alerts", []))
    row["drift_psi"] = float(max(psis)) if psis else None
    row["_drift"], row["_drift_sha"] = d, row["bundle_sha256"]
    points = [("drift_alerts", ts, float(row["drift_alerts"]))]
    return points + ([("drift_psi", ts, row["drift_psi"])] if psis else [])


def _events(row: dict, body: dict, ts: float) -> list:
    row["last_event"] = body["type"]
    return []


def _newer_ota(row: dict, body: dict) -> bool:
    """OTA state comes from ``ota/status`` and from telemetry: the one the device sent last (``seq``) wins."""
    seq = body.get("seq", -1)
    if row["_ota_seq"] is not None and seq < row["_ota_seq"]:
        return False
    row["_ota_seq"] = seq
    return True


def _ota(row: dict, body: dict, ts: float) -> list:
    if _newer_ota(row, body):
        row.update(ota_state=body["state"], ota_update_id=body.get("update_id"), ota_progress=body.get("progress"))
    return []


_APPLY = {"state": _state, "telemetry": _telemetry, "drift": _drift, "events": _events, "ota/status": _ota}
