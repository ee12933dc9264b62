"""The ingest gate: strict parsing (``messages.parse``) plus per-device flood control and counters.

``Gate.check(topic, payload, now)`` returns a ``Message`` or a ``Rejected``; every outcome is counted
(``accepted``, ``rejected[reason]``) and the last few refusals are kept for display. A device may send
``rate`` messages per second on average and ``burst`` at once (a token bucket per device, keyed by the
topic's fleet and device so a flood under any name costs a counter, not a parse); at most ``max_devices``
distinct devices are tracked, so a stream of invented device names cannot grow memory without bound.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from .messages import DEFAULT_SKEW, REASONS, Message, Rejected, parse_parts, split_topic

__all__ = ["Gate", "GateSettings"]


@dataclass
class GateSettings:
    """Limits of the gate: per-device rate (messages/s) and burst, clock skew allowed, devices tracked."""
    rate: float = 20.0
    burst: int = 200
    skew: float = DEFAULT_SKEW
    max_devices: int = 100_000
    keep_rejected: int = 50


class _Bucket:
    __slots__ = ("tokens", "last")

    def __init__(self, tokens: float, last: float):
        self.tokens, self.last = tokens, last


class Gate:
    """One thread calls ``check`` (paho's network thread: no lock on the accepted path); any thread may call
    ``counters()`` and ``recent()``."""

    def __init__(self, settings: GateSettings | None = None):
        self.settings = settings or GateSettings()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self.accepted = 0
        self.rejected = dict.fromkeys(REASONS, 0)
        self._recent: deque[Rejected] = deque(maxlen=self.settings.keep_rejected)

    def check(self, topic: str, payload: bytes, now: float) -> Message | Rejected:
        """Parse one message (never raises) unless its device is over its rate; count the outcome."""
        parts = split_topic(topic)
        if parts is None:
            out = Rejected("topic", f"topic {topic[:200]!r} is not edgepack/v1/<fleet>/<device>/<kind>", topic[:200])
        else:
            out = self._admit(parts[0], parts[1], topic, now) or parse_parts(parts, topic, payload, now,
                                                                             self.settings.skew)
        if type(out) is Message:
            self.accepted += 1
        else:
            with self._lock:
                self.rejected[out.reason] += 1
                self._recent.append(out)
        return out

    def _admit(self, fleet: str, device: str, topic: str, now: float) -> Rejected | None:
        s, key = self.settings, (fleet, device)
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= s.max_devices:
                return Rejected("too_many_devices", f"already tracking {s.max_devices} devices; "
                                "raise max_devices if the fleet is this large", topic[:200], device, fleet)
            b = self._buckets[key] = _Bucket(float(s.burst), now)
        tokens = b.tokens + (now - b.last) * s.rate if now > b.last else b.tokens
        b.tokens, b.last = (tokens if tokens < s.burst else float(s.burst)), now
        if b.tokens < 1.0:
            return Rejected("flood", f"{fleet}/{device} sends more than {s.rate:g} messages/s "
                            f"(burst {s.burst}): dropped", topic[:200], device, fleet)
        b.tokens -= 1.0
        return None

    def counters(self) -> dict:
        """``{"accepted": n, "rejected": {reason: n, ...}}`` (every reason listed, zeros included)."""
        with self._lock:
            return {"accepted": self.accepted, "rejected": dict(self.rejected)}

    def recent(self) -> list[dict]:
        """The last refusals, oldest first: reason, detail, topic, device."""
        with self._lock:
            return [{"reason": r.reason, "detail": r.detail, "topic": r.topic, "device": r.device}
                    for r in self._recent]
