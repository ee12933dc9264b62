"""Strict parsing of the messages devices publish: ``parse(topic, payload, now=...)`` -> ``Message`` or ``Rejected``.

Topics are ``edgepack/v1/<fleet>/<device>/<kind>`` with kind ``state``, ``telemetry``, ``drift``, ``events`` or
``ota/status`` (see ``edgepack_runtime.link``). Every payload is a bounded JSON object (``edgepack_runtime.payload``:
size, nesting, no NaN, no duplicate keys) carrying ``schema`` (1), ``ts``, ``device`` and ``fleet`` equal to the
topic's, ``seq`` (all kinds but ``state``), and the kind's own fields with the types the agent sends. Anything else
is a ``Rejected`` with one of ``REASONS`` and a sentence saying what is wrong: never an exception.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from edgepack_runtime.payload import BadCommand, parse_payload, show

__all__ = ["KINDS", "MAX_PAYLOAD", "Message", "REASONS", "Rejected", "parse", "split_topic"]

PREFIX = "edgepack/v1/"
KINDS = ("state", "telemetry", "drift", "events", "ota/status")
SCHEMAS = (1,)
MAX_PAYLOAD = 256 * 1024
MAX_NAME = 128
MIN_TS = 1e9            # 2001-09-09: a smaller ts is a device without a clock, not a date
DEFAULT_SKEW = 120.0    # seconds a device clock may run ahead of the host's
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
REASONS = ("topic", "unknown_kind", "too_large", "not_json", "schema", "future_ts", "identity", "flood",
           "too_many_devices")


@dataclass(frozen=True, slots=True)
class Message:
    """One accepted message. ``body`` is the whole payload; ``received`` the host's clock when it arrived."""
    fleet: str
    device: str
    kind: str
    ts: float
    seq: int | None
    body: dict
    received: float
    payload: bytes = b""      # the bytes as received (stored as they came); empty when built in code

    @property
    def key(self) -> tuple[str, str]:
        return self.fleet, self.device


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused message: ``reason`` (one of ``REASONS``) and ``detail`` (what is wrong, for a log line)."""
    reason: str
    detail: str
    topic: str = ""
    device: str | None = None
    fleet: str | None = None
    extra: dict = field(default_factory=dict)


def split_topic(topic: str) -> tuple[str, str, str] | None:
    """``edgepack/v1/<fleet>/<device>/<kind>`` -> (fleet, device, kind); None when it is not shaped like one."""
    if not topic.startswith(PREFIX):
        return None
    parts = topic[len(PREFIX):].split("/", 2)
    if len(parts) != 3 or not all(parts) or any(len(p) > MAX_NAME for p in parts[:2]) or _CONTROL.search(topic):
        return None
    return parts[0], parts[1], parts[2]


class _Bad(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _num(value, what: str, *, minimum: float | None = 0.0, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad("schema", f"{what} must be a number, not {show(value)}")
    if minimum is not None and value < minimum:
        raise _Bad("schema", f"{what} must be >= {minimum:g}, not {value!r}")


def _int(value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad("schema", f"{what} must be a non-negative integer, not {show(value)}")


def _str(value, what: str, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > 1000:
        raise _Bad("schema", f"{what} must be a string (up to 1000 characters), not {show(value)}")


def _dict(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad("schema", f"{what} must be a JSON object, not {show(value)}")
    return value


def _state(body: dict) -> None:
    if body.get("state") not in ("online", "offline"):
        raise _Bad("schema", f"state must be 'online' or 'offline', not {show(body.get('state'))}")
    for name in ("model", "version", "backend", "profile"):
        _str(body.get(name), name)


def _telemetry(body: dict) -> None:
    t = _dict(body.get("telemetry"), "telemetry")
    _int(t.get("calls"), "telemetry.calls")
    _num(t.get("throughput_per_s"), "telemetry.throughput_per_s")
    lat = _dict(t.get("latency_ms"), "telemetry.latency_ms")
    for q in ("p50", "p95"):
        _num(lat.get(q), f"telemetry.latency_ms.{q}")
    _num(lat.get("p99"), "telemetry.latency_ms.p99", optional=True)
    for name, n in _dict(t.get("errors", {}), "telemetry.errors").items():
        _int(n, f"telemetry.errors.{name[:40]}")
    for name in ("model", "model_version", "backend", "bundle_sha256"):
        _str(t.get(name), f"telemetry.{name}")
    for name in ("requests", "input_errors", "busy_rejections"):
        if t.get(name) is not None:
            _int(t[name], f"telemetry.{name}")
    if t.get("ota") is not None:
        _str(_dict(t["ota"], "telemetry.ota").get("state"), "telemetry.ota.state")
    for name in ("cost_per_1k", "energy_per_1k_j"):
        _num(t.get(name), f"telemetry.{name}", optional=True)


def _drift(body: dict) -> None:
    d = _dict(body.get("drift"), "drift")
    _int(d.get("calls"), "drift.calls")
    for name, entry in _dict(d.get("tensors"), "drift.tensors").items():
        entry = _dict(entry, f"drift.tensors.{name[:40]}")
        counts = entry.get("counts")
        if not isinstance(counts, list) or len(counts) > 4096:
            raise _Bad("schema", f"drift.tensors.{name[:40]}.counts must be a list of counts, not {show(counts)}")
        for c in counts:
            _int(c, f"drift.tensors.{name[:40]}.counts[]")
        for c in entry.get("class_counts") or []:
            _int(c, f"drift.tensors.{name[:40]}.class_counts[]")
        for m in ("psi", "js", "ks", "class_shift"):
            _num(entry.get(m), f"drift.tensors.{name[:40]}.{m}", minimum=None, optional=True)
    alerts = d.get("alerts", [])
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        raise _Bad("schema", f"drift.alerts must be a list of objects, not {show(alerts)}")


def _events(body: dict) -> None:
    if not isinstance(body.get("type"), str) or not body["type"] or len(body["type"]) > 100:
        raise _Bad("schema", f"an event needs a 'type' string, not {show(body.get('type'))}")


def _ota(body: dict) -> None:
    _str(body.get("state"), "state", optional=False)
    _str(body.get("update_id"), "update_id")
    _num(body.get("progress"), "progress", optional=True)


_CHECKS = {"state": _state, "telemetry": _telemetry, "drift": _drift, "events": _events, "ota/status": _ota}


def _envelope(fleet: str, device: str, kind: str, body: dict, now: float, skew: float) -> tuple[float, int | None]:
    schema = body.get("schema")
    if isinstance(schema, bool) or schema not in SCHEMAS:
        raise _Bad("schema", f"schema must be one of {list(SCHEMAS)}, not {show(schema)}")
    if body.get("device") != device or body.get("fleet") != fleet:
        raise _Bad("identity", f"the body says {show(body.get('fleet'))}/{show(body.get('device'))} but the "
                               f"topic is {fleet}/{device}: refused (a device may publish only under its own topic)")
    ts = body.get("ts")
    _num(ts, "ts", minimum=MIN_TS)
    if ts > now + skew:
        raise _Bad("future_ts", f"ts {ts:.3f} is {ts - now:.1f} s ahead of this host's clock (allowed: {skew:g} s); "
                                "check the device's clock (NTP)")
    seq = body.get("seq")
    if kind != "state" or seq is not None:
        _int(seq, "seq")
    return float(ts), seq


def parse(topic: str, payload: bytes, *, now: float, skew: float = DEFAULT_SKEW) -> Message | Rejected:
    """The message on ``topic``, checked field by field, or why it is refused. Never raises."""
    parts = split_topic(topic)
    if parts is None:
        return Rejected("topic", f"topic {topic[:200]!r} is not edgepack/v1/<fleet>/<device>/<kind>", topic[:200])
    fleet, device, kind = parts
    where = {"topic": topic[:200], "device": device, "fleet": fleet}
    if kind not in _CHECKS:
        return Rejected("unknown_kind", f"unknown message kind {kind[:100]!r} (known: {', '.join(KINDS)})", **where)
    if not payload:
        return Rejected("schema", "empty payload (a retained message being cleared)", **where)
    if len(payload) > MAX_PAYLOAD:
        return Rejected("too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}", **where)
    try:
        body = parse_payload(payload, max_bytes=MAX_PAYLOAD)
        ts, seq = _envelope(fleet, device, kind, body, now, skew)
        _CHECKS[kind](body)
    except BadCommand as exc:
        return Rejected("not_json", str(exc), **where)
    except _Bad as exc:
        return Rejected(exc.reason, str(exc), **where)
    return Message(fleet, device, kind, ts, seq, body, now, bytes(payload))
