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


def rollback(*, broker: str, devices: list[str] | tuple = (), fleet: str = "default", timeout: float = 60.0,
             discovery: float = 2.0, connect_timeout: float = 10.0, **auth) -> list[dict]:
    """Roll ``devices`` (or every announced device of ``fleet``) back; one result per device."""
    base = f"edgepack/v1/{fleet}"
    seen: dict[str, dict] = {}
    rows: dict[str, dict] = {}
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        body = _json(payload)
        if len(parts) != 5 or body is None:
            return
        device, kind = parts[3], parts[4]
        with lock:
            if kind == "state":
                seen[device] = body
            elif kind == "events" and device in rows:
                _answer(rows[device], body)

    link = HostLink(broker, on_connect=lambda ln: [ln.subscribe(f"{base}/+/{k}") for k in ("state", "events")],
                    on_message=on_message, **auth)
    with link:
        link.wait_connected(connect_timeout)
        deadline = time.monotonic() + discovery
        while time.monotonic() < deadline and not (devices and all(d in seen for d in devices)):
            time.sleep(0.05)
        with lock:
            chosen = list(dict.fromkeys(devices)) or sorted(d for d, s in seen.items() if s.get("ota"))
        if not chosen:
            raise EdgepackError(f"no device of fleet {fleet!r} has announced flash support on {broker}",
                                hint="name devices with --device, or check the fleet name and the broker")
        for device in chosen:
            rid = uuid.uuid4().hex[:16]
            with lock:
                rows[device] = {"device": device, "ok": False, "state": "sent", "reason": None, "request_id": rid,
                                "status": None}
                if device not in seen:
                    rows[device].update(state="unknown", reason=f"device {device} has never announced itself; "
                                                                 "check the id and --fleet")
                    continue
            link.publish(f"{base}/{device}/cmd/ota-rollback", json.dumps({"request_id": rid}).encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with lock:
                if all(r["state"] not in ("sent", "started") for r in rows.values()):
                    break
            time.sleep(0.05)
    with lock:
        for r in rows.values():
            if r["state"] in ("sent", "started"):
                online = (seen.get(r["device"]) or {}).get("state")
                r.update(state="no_answer", reason=f"no answer within {timeout:g} s (device {online or 'unknown'}); "
                                                   "commands are not queued for offline devices: retry when it is online")
        return [dict(r) for r in rows.values()]


def _answer(row: dict, body: dict) -> None:
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
