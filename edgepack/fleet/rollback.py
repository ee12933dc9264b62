"""``edgepack rollback``: ask devices to go back to their previous slot (``cmd/ota-rollback``) and wait.

The device answers ``ota_rollback_started`` at once and ``ota_rollback`` (final ``state``, ``reason``) when
the previous slot passed its health check and serves again (``rolled_back``), or why not (``failed``: no
previous slot, an update in progress). Commands are not queued for offline devices (clean MQTT sessions): a
device that does not answer by ``timeout`` is reported as such and nothing happens on it.
"""
from __future__ import annotations

import json
import threading
import time
import uuid

from ..errors import EdgepackError
from .hostlink import HostLink

WAITING = ("sent", "started")


def rollback(*, broker: str, devices: list[str] | tuple = (), fleet: str = "default", timeout: float = 60.0,
             discovery: float = 2.0, connect_timeout: float = 10.0, **auth) -> list[dict]:
    """Roll ``devices`` (or every announced device of ``fleet`` that takes updates) back; one result each."""
    run = _Rollback(fleet)
    with HostLink(broker, on_connect=run.subscribe, on_message=run.message, **auth) as link:
        link.wait_connected(connect_timeout)
        chosen = run.discover(list(dict.fromkeys(devices)), discovery)
        if not chosen:
            raise EdgepackError(f"no device of fleet {fleet!r} has announced flash support on {broker}",
                                hint="name devices with --device, or check the fleet name and the broker")
        for device in chosen:
            request = run.ask(device)
            if request is not None:
                link.publish(f"{run.base}/{device}/cmd/ota-rollback", request)
        run.wait(timeout)
    return run.results(timeout)


class _Rollback:
    def __init__(self, fleet: str):
        self.base = f"edgepack/v1/{fleet}"
        self.seen: dict[str, dict] = {}
        self.rows: dict[str, dict] = {}
        self.lock = threading.Lock()

    def subscribe(self, link: HostLink) -> None:
        for kind in ("state", "events"):
            link.subscribe(f"{self.base}/+/{kind}")

    def message(self, topic: str, payload: bytes) -> None:
        parts, body = topic.split("/"), _json(payload)
        if len(parts) != 5 or body is None:
            return
        device, kind = parts[3], parts[4]
        with self.lock:
            if kind == "state":
                self.seen[device] = body
            elif kind == "events" and device in self.rows:
                _answer(self.rows[device], body)

    def discover(self, named: list[str], seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (named and all(d in self.seen for d in named)):
            time.sleep(0.05)
        with self.lock:
            return named or sorted(d for d, s in self.seen.items() if s.get("ota"))

    def ask(self, device: str) -> bytes | None:
        """The command payload for ``device``, or None when it never announced itself (refused here)."""
        rid = uuid.uuid4().hex[:16]
        with self.lock:
            row = self.rows[device] = {"device": device, "ok": False, "state": "sent", "reason": None,
                                       "request_id": rid, "status": None}
            if device not in self.seen:
                row.update(state="unknown", reason=f"device {device} has never announced itself; check the id "
                                                   "and --fleet")
                return None
        return json.dumps({"request_id": rid}).encode()

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(r["state"] not in WAITING for r in self.rows.values()):
                    return
            time.sleep(0.05)

    def results(self, timeout: float) -> list[dict]:
        with self.lock:
            for r in self.rows.values():
                if r["state"] in WAITING:
                    online = (self.seen.get(r["device"]) or {}).get("state")
                    r.update(state="no_answer", reason=f"no answer within {timeout:g} s (device {online or 'unknown'})"
                                                       "; commands are not queued for offline devices: retry when "
                                                       "it is online")
            return [dict(r) for r in self.rows.values()]


def _answer(row: dict, body: dict) -> None:
    """Apply one ``events`` message to ``row``; a final state is never changed again (a late, reordered or
    repeated ``ota_rollback_started`` must not make the host wait for an answer it already has)."""
    if row["state"] not in WAITING:
        return
    kind = body.get("type")
    if kind == "ota_rollback_started" and body.get("request_id") == row["request_id"]:
        row["state"] = "started"
    elif kind == "ota_rollback" and body.get("request_id") == row["request_id"]:
        row.update(state=body.get("state") or "failed", reason=body.get("reason"), status=body.get("status"),
                   ok=body.get("state") == "rolled_back")
    elif kind in ("bad_command", "command_failed", "unknown_command") and body.get("verb") == "ota-rollback":
        row.update(state="failed", reason=body.get("error"))


def _json(payload: bytes) -> dict | None:
    try:
        body = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None
