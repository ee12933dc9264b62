"""Who is being flashed and how far each device is: announcements, choice of devices, states, results.

States of a device in a flash run: ``unknown`` (named, never announced), ``refused`` (by the host: profile,
no flash support), ``pending`` (offered, no answer yet), then what the device reports on ``ota/status``
(``downloading`` with progress, ``downloaded``, ``verifying``, ``installing``, ``health_check``, ``switching``,
``rolling_back``), and a final one: ``committed``, ``rolled_back``, ``failed`` (device) or ``timed_out``.
Only ``committed`` is a success (``shadowing`` for a shadow flash, ``mode: "shadow"``: edgepack.fleet.shadow).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

FINAL = ("committed", "rolled_back", "failed", "shadowing")
GOOD = ("committed", "shadowing")       # a shadow offer never commits, an install offer never ends shadowing
HOST_FINAL = FINAL + ("unknown", "refused")


@dataclass
class Row:
    device: str
    state: str = "pending"
    update_id: str | None = None
    progress: float | None = None
    reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    status: dict = field(default_factory=dict)
    answered: bool = False
    transfer: dict | None = None         # the device's transfer counters (from its downloading/downloaded status)


class Roster:
    """Thread-safe: the link's thread feeds ``announced``/``status``; the caller reads ``snapshot``."""

    def __init__(self, named: list[str]):
        self.named = list(dict.fromkeys(named))
        self.announcements: dict[str, dict] = {}
        self.rows: dict[str, Row] = {}
        self._lock = threading.Lock()

    def announced(self, device: str, body: dict) -> None:
        with self._lock:
            self.announcements[device] = body

    def discover(self, seconds: float) -> None:
        """Give the broker ``seconds`` to deliver the retained announcements (less when every named device is in)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                if self.named and all(d in self.announcements for d in self.named):
                    return
            time.sleep(0.05)

    def choose(self, profiles: list[str], allow_unknown: bool, needs: tuple = ()) -> list[tuple[str, str | None]]:
        """The devices of this run, each with the reason it is refused (None: offer it); ``needs``: features
        the device's announcement must state (e.g. ``shadow``)."""
        with self._lock:
            devices = self.named or sorted(self.announcements)
            chosen = [(d, self._refusal(d, profiles, allow_unknown) or self._lacks(d, needs)) for d in devices]
            for device, why in chosen:
                row = self.rows[device] = Row(device)
                if why is not None:
                    row.state = "unknown" if device not in self.announcements else "refused"
                    row.reason, row.ended = why, time.monotonic()
            return chosen

    def _refusal(self, device: str, profiles: list[str], allow_unknown: bool) -> str | None:
        seen = self.announcements.get(device)
        if seen is None:
            if allow_unknown:
                return None
            return (f"device {device} has never announced itself (no retained state on the broker): check the id "
                    "and --fleet, or pass --allow-unknown to leave the offer pending until it appears")
        if not seen.get("ota"):
            return (f"device {device} does not accept flash over MQTT (its agent runs without a state folder); "
                    "start it with --state-dir, or use --via")
        profile = seen.get("profile")
        if profile and profiles and profile not in profiles:
            return (f"bundle suits device profiles {', '.join(profiles)}, not {device}'s {profile}; build it for "
                    f"that profile (edgepack build --target {profile})")
        return None

    def _lacks(self, device: str, needs: tuple) -> str | None:
        seen = self.announcements.get(device)
        missing = [n for n in needs if not (seen or {}).get(n)]      # unknown devices too: it cannot be told
        if missing:
            return (f"device {device} does not announce {', '.join(missing)} support (its agent is older, or runs "
                    "without a state folder); update the agent, or flash without --shadow")
        return None

    def offered(self, device: str, update_id: str) -> None:
        with self._lock:
            self.rows[device].update_id = update_id

    def status(self, device: str, body: dict) -> bool:
        """A device status; True when it made this run's update final just now."""
        with self._lock:
            row = self.rows.get(device)
            if row is None or row.update_id is None or body.get("update_id") != row.update_id or row.state in FINAL:
                return False
            state = body.get("state")
            if not isinstance(state, str):
                return False
            row.state, row.answered, row.status = state, True, body
            if isinstance(body.get("transfer"), dict):
                row.transfer = body["transfer"]
            progress = body.get("progress")
            row.progress = float(progress) if isinstance(progress, (int, float)) else row.progress
            row.reason = body.get("reason") if isinstance(body.get("reason"), str) else row.reason
            if state in FINAL:
                row.ended = time.monotonic()
                return True
            return False

    def state(self, device: str) -> str | None:
        with self._lock:
            row = self.rows.get(device)
            return row.state if row else None

    def all_final(self) -> bool:
        with self._lock:
            return all(r.state in HOST_FINAL for r in self.rows.values())

    def expire(self) -> None:
        """At the timeout: devices that never answered are ``pending``, the others ``timed_out``."""
        with self._lock:
            for row in self.rows.values():
                if row.state not in HOST_FINAL:
                    online = (self.announcements.get(row.device) or {}).get("state")
                    if not row.answered:
                        row.reason = (f"no answer ({'offline' if online == 'offline' else 'not seen'}); the offer "
                                      "stays on the broker: run the command again to serve it when the device is back")
                        row.state = "pending"
                    else:
                        row.reason = f"timed out in state {row.state}"
                        row.state = "timed_out"
                    row.ended = time.monotonic()

    def snapshot(self, sender=None) -> list[dict]:
        with self._lock:
            rows = list(self.rows.values())
            online = {d: a.get("state") for d, a in self.announcements.items()}
        return [{"device": r.device, "state": r.state, "progress": r.progress, "reason": r.reason,
                 "online": online.get(r.device), "sent": (sender.counters(r.device) if sender else {}).get("sent", 0)}
                for r in rows]

    def results(self, sender=None) -> list[dict]:
        with self._lock:
            rows = list(self.rows.values())
        return [{"device": r.device, "ok": r.state in GOOD, "state": r.state, "update_id": r.update_id,
                 "reason": r.reason, "progress": r.progress, "model": r.status.get("model"),
                 "seconds": round((r.ended or time.monotonic()) - r.started, 3),
                 "host": dict(sender.counters(r.device), resent_chunks=sender.resent(r.device)) if sender else {},
                 "device_transfer": r.transfer}
                for r in rows]
