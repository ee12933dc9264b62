"""Shadow testing from the host: start a shadow period on devices, read its agreement, stop or promote it.

    rows = start_shadow("cand.edgepack", broker=url, devices=["cam-1"], share=0.1)  # flash, mode shadow
    rows = shadow_status(broker=url, devices=["cam-1"])      # [{"device", "ok", "state", "shadow": BLOCK|None}]
    verdict = judge(rows[0]["shadow"], min_samples=200, min_top1=0.99, min_cosine=0.999)
    promote_shadow(broker=url, devices=["cam-1"])             # through each device's Updater: "committed"
    stop_shadow(broker=url, devices=["cam-1"])

``BLOCK`` is what the device puts in telemetry as ``telemetry["shadow"]`` (``shadow_block`` reads it from a
monitor's message): this period's ``samples``, ``dropped``, ``errors``, ``agreement`` {top1, cosine_mean,
cosine_min, max_abs}, ``latency_ms`` {shadow, serving: {p50, p95}}, and the same figures in ``total`` since the
shadow started. The device side is ``edgepack_runtime.shadow`` / ``shadowinstall``.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from ..errors import EdgepackError
from .flash import FlashSettings, flash
from .hostlink import HostLink

REFUSALS = ("bad_command", "command_failed", "unknown_command", "rate_limited")


def start_shadow(bundle: str | Path, *, broker: str, devices: list[str] | tuple = (), fleet: str = "default",
                 share: float | None = 0.1, settings: FlashSettings | None = None,
                 progress: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Flash ``bundle`` as a shadow (``flash`` with mode ``shadow``); rows as ``flash``, ok when ``shadowing``."""
    s = dataclasses.replace(settings or FlashSettings(), mode="shadow", shadow_share=share)
    return flash(bundle, broker=broker, devices=devices, fleet=fleet, settings=s, progress=progress)


def shadow_status(*, broker: str, devices: list[str] | tuple = (), fleet: str = "default", timeout: float = 10.0,
                  **auth) -> list[dict]:
    """Ask each device for its shadow's figures (``cmd/shadow-status``): state ``shadowing`` with ``shadow`` =
    BLOCK, or ``none``; ``no_answer`` / ``failed`` otherwise."""
    return _ask("shadow-status", broker, devices, fleet, timeout, auth)


def stop_shadow(*, broker: str, devices: list[str] | tuple = (), fleet: str = "default", timeout: float = 10.0,
                **auth) -> list[dict]:
    """Stop and remove the shadow on each device (``cmd/shadow-stop``): state ``stopped`` or ``none``."""
    return _ask("shadow-stop", broker, devices, fleet, timeout, auth)


def promote_shadow(*, broker: str, devices: list[str] | tuple = (), fleet: str = "default", timeout: float = 120.0,
                   **auth) -> list[dict]:
    """Make each device's shadow its serving model through its Updater (``cmd/shadow-promote``): ok when the
    final state is ``committed`` (else ``rolled_back`` / ``failed`` with the device's reason)."""
    return _ask("shadow-promote", broker, devices, fleet, timeout, auth)


def shadow_block(message) -> dict | None:
    """The shadow block of a telemetry message: an ``edgepack.fleet.messages.Message``, its body
    (``{"telemetry": {...}}``) or the telemetry dict itself; None when the device runs no shadow."""
    body = getattr(message, "body", message)
    if not isinstance(body, dict):
        return None
    telemetry = body.get("telemetry", body)
    block = telemetry.get("shadow") if isinstance(telemetry, dict) else None
    return block if isinstance(block, dict) else None


def judge(block: dict | None, *, min_samples: int = 100, min_top1: float | None = 0.99,
          min_cosine: float | None = 0.999, max_abs: float | None = None,
          max_p95_ratio: float | None = None) -> dict:
    """Whether a shadow period supports promotion, over ``block["total"]`` (the whole period on the device):
    ``{"passed", "reasons": [...], "figures": {...}}``. ``min_top1`` applies only to class-score outputs,
    ``min_cosine`` to the mean cosine, ``max_p95_ratio`` to shadow p95 / serving p95 on the same calls."""
    if not isinstance(block, dict):
        return {"passed": False, "reasons": ["no shadow runs on the device (no shadow block)"], "figures": {}}
    t = block.get("total") if isinstance(block.get("total"), dict) else block      # device data: checked below
    agree, lat = _dict(t, "agreement"), _dict(t, "latency_ms")
    shadow_p95, serving_p95 = _num(_dict(lat, "shadow"), "p95"), _num(_dict(lat, "serving"), "p95")
    figures = {k: int(_num(t, k) or 0) for k in ("samples", "dropped", "errors", "nonfinite")}
    figures.update({k: _num(agree, k) for k in ("top1", "cosine_mean", "cosine_min", "max_abs")},
                   p95_ratio=shadow_p95 / serving_p95 if shadow_p95 is not None and serving_p95 else None)
    reasons = []
    if figures["samples"] < min_samples:
        reasons.append(f"only {figures['samples']} samples (< {min_samples}): wait longer or raise the share")
    if figures["errors"] or figures["nonfinite"]:
        reasons.append(f"the candidate failed on {figures['errors']} calls and gave NaN/Inf on "
                       f"{figures['nonfinite']} ({str(block.get('last_error') or 'no error text')[:300]})")
    checks = [("top1", min_top1, False, "top-1 agreement"), ("cosine_mean", min_cosine, True, "mean cosine"),
              ("max_abs", max_abs, True, "max abs difference"),
              ("p95_ratio", max_p95_ratio, False, "p95 latency ratio (shadow / serving)")]
    for key, bound, needed, what in checks:
        value, floor = figures[key], key in ("top1", "cosine_mean")
        if bound is None or (value is None and not (needed and figures["samples"])):
            continue                                   # top-1: only for class scores; p95: only when measured
        if value is None:
            reasons.append(f"the device sent no {what} figure")
        elif (value < bound) if floor else (value > bound):
            reasons.append(f"{what} {value:.6g} is {'below' if floor else 'over'} {bound}")
    return {"passed": not reasons, "reasons": reasons, "figures": figures}


def _text(value) -> str | None:
    return value[:500] if isinstance(value, str) else None


def _dict(d: dict, key: str) -> dict:
    value = d.get(key)
    return value if isinstance(value, dict) else {}


def _num(d: dict, key: str) -> float | None:
    """A finite number from device data, else None."""
    value = d.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        return None
    return float(value)


# one command to several devices, answers collected from `events` ---------------------------------------
def _ask(verb: str, broker: str, devices, fleet: str, timeout: float, auth: dict, discovery: float = 2.0) -> list[dict]:
    run = _Ask(verb, fleet)
    connect_timeout = auth.pop("connect_timeout", 10.0)          # the rest: username, password, ca
    with HostLink(broker, on_connect=run.subscribe, on_message=run.message, **auth) as link:
        link.wait_connected(connect_timeout)
        chosen = run.discover(list(dict.fromkeys(devices)), discovery)
        if not chosen:
            raise EdgepackError(f"no device of fleet {fleet!r} has announced shadow support on {broker}",
                                hint="name devices with --device, or check the fleet name and the broker")
        for device in chosen:
            payload = run.ask(device)
            if payload is not None:
                link.publish(f"{run.base}/{device}/cmd/{verb}", payload)
        run.wait(timeout)
    return run.results(timeout)


class _Ask:
    def __init__(self, verb: str, fleet: str):
        self.verb, self.base = verb, f"edgepack/v1/{fleet}"
        self.seen: dict[str, dict] = {}
        self.rows: dict[str, dict] = {}
        self.lock = threading.Lock()

    def subscribe(self, link: HostLink) -> None:
        for kind in ("state", "events"):
            link.subscribe(f"{self.base}/+/{kind}")

    def message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        try:
            body = json.loads(payload) if payload else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            return
        if len(parts) != 5 or not isinstance(body, dict):
            return
        with self.lock:
            if parts[4] == "state":
                self.seen[parts[3]] = body
            elif parts[4] == "events" and parts[3] in self.rows:
                self._answer(self.rows[parts[3]], body)

    def discover(self, named: list[str], seconds: float) -> list[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (named and all(d in self.seen for d in named)):
            time.sleep(0.05)
        with self.lock:
            return named or sorted(d for d, s in self.seen.items() if s.get("shadow"))

    def ask(self, device: str) -> bytes | None:
        rid = uuid.uuid4().hex[:16]
        with self.lock:
            row = self.rows[device] = {"device": device, "ok": False, "state": "sent", "reason": None,
                                       "request_id": rid, "shadow": None, "status": None}
            if device not in self.seen:
                row.update(state="unknown", reason=f"device {device} has never announced itself; check the id and "
                                                   "the fleet")
                return None
        return json.dumps({} if self.verb == "shadow-status" else {"request_id": rid}).encode()

    def _answer(self, row: dict, body: dict) -> None:
        kind, rid = body.get("type"), body.get("request_id")
        if row["state"] not in ("sent", "started"):
            return
        if kind in REFUSALS and body.get("verb") == self.verb:
            row.update(state="failed", reason=_text(body.get("error")) or kind)
        elif kind == "shadow_status" and self.verb == "shadow-status":
            block = body.get("shadow") if isinstance(body.get("shadow"), dict) else None
            row.update(state="shadowing" if block else "none", shadow=block, ok=True)
        elif kind == "shadow_stopped" and self.verb == "shadow-stop" and rid == row["request_id"]:
            row.update(state="stopped" if body.get("stopped") else "none", reason=_text(body.get("reason")), ok=True,
                       shadow={"total": body.get("total")} if body.get("total") else None)
        elif kind == "shadow_promote_started" and rid == row["request_id"]:
            row["state"] = "started"
        elif kind == "shadow_promoted" and rid == row["request_id"]:
            state = body.get("state") if isinstance(body.get("state"), str) and body.get("state") else "failed"
            row.update(state=state[:40], reason=_text(body.get("reason")), status=body.get("status"),
                       ok=state == "committed")

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(r["state"] not in ("sent", "started") for r in self.rows.values()):
                    return
            time.sleep(0.05)

    def results(self, timeout: float) -> list[dict]:
        with self.lock:
            for r in self.rows.values():
                if r["state"] in ("sent", "started"):
                    online = (self.seen.get(r["device"]) or {}).get("state")
                    r.update(state="no_answer", reason=f"no answer within {timeout:g} s (device "
                                                       f"{online or 'unknown'}); commands are not queued for "
                                                       "offline devices")
            return [dict(r) for r in self.rows.values()]
