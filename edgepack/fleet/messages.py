"""Strict parsing of the messages devices publish: ``parse(topic, payload, now=...)`` -> ``Message`` or ``Rejected``.

Topics are ``edgepack/v1/<fleet>/<device>/<kind>`` with kind ``state``, ``telemetry``, ``drift``, ``events`` or
``ota/status`` (see ``edgepack_runtime.link``). Every payload is a bounded JSON object (size, and nesting
counted before ``json.loads`` runs, so a hostile payload costs linear time; no NaN/Infinity literals; a key
given twice keeps its last value, as every JSON reader of the stored text will see it) carrying ``schema``
(1), ``ts``, ``device`` and ``fleet`` equal to the topic's, ``seq`` (all kinds but ``state``), and the kind's
own fields with the types the agent sends (numbers the host uses must be finite). Anything else is a
``Rejected`` with one of ``REASONS`` and a sentence saying what is wrong: never an exception.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from edgepack_runtime.payload import show, too_deep

__all__ = ["KINDS", "MAX_PAYLOAD", "Message", "REASONS", "Rejected", "parse", "split_topic"]

PREFIX = "edgepack/v1/"
KINDS = ("state", "telemetry", "drift", "events", "ota/status")
SCHEMAS = (1,)
MAX_PAYLOAD = 256 * 1024
MAX_DEPTH = 32
MAX_NAME = 128
MIN_TS = 1e9            # 2001-09-09: a smaller ts is a device without a clock, not a date
DEFAULT_SKEW = 120.0    # seconds a device clock may run ahead of the host's
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
    """``edgepack/v1/<fleet>/<device>/<kind>`` -> (fleet, device, kind); None when it is not shaped like one.
    Names must be printable (no control, invisible or separator characters but the space): a name that
    looks like another device's is refused, not listed beside it."""
    if not topic.startswith(PREFIX):
        return None
    parts = topic[len(PREFIX):].split("/", 2)
    if len(parts) != 3 or not all(parts) or any(len(p) > MAX_NAME for p in parts[:2]) or not topic.isprintable():
        return None
    return parts[0], parts[1], parts[2]


class _Bad(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def _num(value, what: str, *, minimum: float | None = 0.0, optional: bool = False) -> None:
    kind = type(value)
    if (kind is float and value - value == 0.0) or kind is int:      # finite (inf - inf and NaN are NaN)
        if minimum is None or value >= minimum:
            return
        raise _Bad("schema", f"{what} must be >= {minimum:g}, not {value!r}")
    if value is None and optional:
        return
    raise _Bad("schema", f"{what} must be a number, not {show(value)}")


def _int(value, what: str) -> None:
    if type(value) is not int or value < 0:
        raise _Bad("schema", f"{what} must be a non-negative integer, not {show(value)}")


def _str(value, what: str, *, optional: bool = True) -> None:
    if (type(value) is str and len(value) <= 1000) or (value is None and optional):
        return
    raise _Bad("schema", f"{what} must be a string (up to 1000 characters), not {show(value)}")


def _dict(value, what: str) -> dict:
    if type(value) is not dict:
        raise _Bad("schema", f"{what} must be a JSON object, not {show(value)}")
    return value


def _state(body: dict) -> None:
    if body.get("state") not in ("online", "offline"):
        raise _Bad("schema", f"state must be 'online' or 'offline', not {show(body.get('state'))}")
    for name in ("model", "version", "backend", "profile"):
        _str(body.get(name), name)


_TELEMETRY_STR = tuple((name, f"telemetry.{name}") for name in ("model", "model_version", "backend", "bundle_sha256"))
_TELEMETRY_INT = tuple((name, f"telemetry.{name}") for name in ("requests", "input_errors", "busy_rejections"))
_TELEMETRY_NUM = tuple((name, f"telemetry.{name}") for name in ("cost_per_1k", "energy_j_per_1k", "busy_share"))


def _telemetry(body: dict) -> None:
    t = _dict(body.get("telemetry"), "telemetry")
    get = t.get
    _int(get("calls"), "telemetry.calls")
    _num(get("throughput_per_s"), "telemetry.throughput_per_s")
    lat = _dict(get("latency_ms"), "telemetry.latency_ms")
    _num(lat.get("p50"), "telemetry.latency_ms.p50")
    _num(lat.get("p95"), "telemetry.latency_ms.p95")
    _num(lat.get("p99"), "telemetry.latency_ms.p99", optional=True)
    if "errors" in t:
        for name, n in _dict(t["errors"], "telemetry.errors").items():
            _int(n, f"telemetry.errors.{name[:40]}")
    for name, what in _TELEMETRY_STR:
        _str(get(name), what)
    for name, what in _TELEMETRY_INT:
        value = get(name)
        if value is not None:
            _int(value, what)
    ota = get("ota")
    if ota is not None:
        _str(_dict(ota, "telemetry.ota").get("state"), "telemetry.ota.state")
    for name, what in _TELEMETRY_NUM:
        _num(get(name), what, optional=True)


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


def _no_constant(name: str):
    raise _Bad("not_json", f"payload is not JSON: {name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def load(payload: bytes) -> dict:
    """A payload's JSON object: UTF-8, nesting bounded before parsing (linear time), no NaN/Infinity."""
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Bad("not_json", f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if too_deep(text, MAX_DEPTH):
        raise _Bad("not_json", f"payload nests deeper than {MAX_DEPTH} levels")
    try:
        body = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise _Bad("not_json", f"payload is not JSON: {exc}") from None
    if type(body) is not dict:
        raise _Bad("not_json", f"payload must be a JSON object, not {show(body)}")
    return body


def parse(topic: str, payload: bytes, *, now: float, skew: float = DEFAULT_SKEW) -> Message | Rejected:
    """The message on ``topic``, checked field by field, or why it is refused. Never raises."""
    parts = split_topic(topic)
    if parts is None:
        return Rejected("topic", f"topic {topic[:200]!r} is not edgepack/v1/<fleet>/<device>/<kind>", topic[:200])
    return parse_parts(parts, topic, payload, now, skew)


def parse_parts(parts: tuple[str, str, str], topic: str, payload: bytes, now: float,
                skew: float = DEFAULT_SKEW) -> Message | Rejected:
    """``parse`` for a topic already split by ``split_topic``."""
    fleet, device, kind = parts
    check = _CHECKS.get(kind)
    if check is None:
        return Rejected("unknown_kind", f"unknown message kind {kind[:100]!r} (known: {', '.join(KINDS)})",
                        topic[:200], device, fleet)
    if not payload:
        return Rejected("schema", "empty payload (a retained message being cleared)", topic[:200], device, fleet)
    if len(payload) > MAX_PAYLOAD:
        return Rejected("too_large", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}", topic[:200], device,
                        fleet)
    try:
        body = load(payload)
        ts, seq = _envelope(fleet, device, kind, body, now, skew)
        check(body)
    except _Bad as exc:
        return Rejected(exc.reason, str(exc), topic[:200], device, fleet)
    return Message(fleet, device, kind, ts, seq, body, now, bytes(payload))
