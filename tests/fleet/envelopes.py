"""Device messages for the fleet tests, shaped exactly as the agent sends them (``sink.envelope`` around the
bodies of ``Agent.publish_telemetry``/``publish_drift``, ``MqttLink._state_payload``, ``ota/status``)."""
from __future__ import annotations

import json
import time

from edgepack.fleet.messages import Message, parse


def topic(device: str, kind: str, fleet: str = "f") -> str:
    return f"edgepack/v1/{fleet}/{device}/{kind}"


def telemetry_body(p50: float = 1.5, p95: float = 3.0, calls: int = 100, errors: int = 0, model: str = "adder",
                   version: str = "1.0", sha: str = "ab" * 32, ota: str | None = "committed", **extra) -> dict:
    t = {"backend": "onnxruntime", "model": model, "model_version": version, "bundle_created": None,
         "bundle_format": 1, "bundle_sha256": sha, "calls": calls, "requests": calls, "period_s": 10.0,
         "throughput_per_s": calls / 10.0, "latency_ms": {"p50": p50, "p95": p95, "p99": p95 * 1.2, "mean": p50},
         "errors": {"BackendError": errors} if errors else {}, "input_errors": 0, "nonfinite_inputs": 0,
         "busy_rejections": 0, "cache_hit_rate": None, "rss_bytes": 50_000_000, "drift_observe_every": 1,
         "queue": {"depth": 0, "max": 64}, "sink": {"kind": "mqtt", "connected": True}, **extra}
    if ota:
        t["ota"] = {"state": ota, "update_id": "u1", "active_slot": "a", "reason": None}
    return {"telemetry": t}


def drift_body(counts=(10, 20, 30, 40), alerts=(), psi: float = 0.01) -> dict:
    return {"drift": {"calls": sum(counts), "observe_every": 1, "alerts": list(alerts),
                      "tensors": {"x": {"kind": "inputs", "counts": list(counts), "n": sum(counts), "psi": psi,
                                        "js": 0.01, "ks": 0.02}}}}


def payload(device: str, body: dict, *, seq: int | None = 1, ts: float | None = None, fleet: str = "f",
            **override) -> bytes:
    doc = {"schema": 1, "seq": seq, "ts": time.time() if ts is None else ts, "device": device, "fleet": fleet,
           **body, **override}
    if seq is None:
        doc.pop("seq")
    return json.dumps(doc).encode()


def state_payload(device: str, state: str = "online", *, ts: float | None = None, fleet: str = "f", **announce):
    return json.dumps({**announce, "schema": 1, "state": state, "device": device, "fleet": fleet,
                       "ts": time.time() if ts is None else ts}).encode()


def message(device: str, kind: str, body: dict | None = None, *, seq: int | None = 1, ts: float, received: float,
            fleet: str = "f", state: str = "online") -> Message:
    """An accepted ``Message`` (through the real parser), received at ``received``."""
    if kind == "state":
        raw = state_payload(device, state, ts=ts, fleet=fleet)
    else:
        raw = payload(device, body, seq=seq, ts=ts, fleet=fleet)
    msg = parse(topic(device, kind, fleet), raw, now=received)
    assert isinstance(msg, Message), msg
    return msg
