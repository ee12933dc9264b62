"""Devices for the monitor tests: real paho clients publishing what the agent publishes (``state`` birth with a
last will, ``telemetry``, ``drift``, ``ota/status``) with known figures, so the tests can assert the numbers."""
from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt


def _body(device: str, fleet: str, seq: int | None, **fields) -> bytes:
    body = {"schema": 1, "ts": time.time(), "device": device, "fleet": fleet, **fields}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body).encode()


class FakeDevice:
    """One device: ``online()``, ``telemetry(p50, p95, ...)``, ``drift(psi, alerts)``, ``close()`` (will: offline)."""

    def __init__(self, port: int, device: str, fleet: str = "lab", *, model: str = "clf", version: str = "1.0.0",
                 backend: str = "litert"):
        self.device, self.fleet, self.model, self.version, self.backend = device, fleet, model, version, backend
        self.base, self.seq = f"edgepack/v1/{fleet}/{device}", 0
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fake-{time.time_ns()}",
                             protocol=mqtt.MQTTv5)
        self.c.will_set(f"{self.base}/state", _body(device, fleet, None, state="offline"), qos=1, retain=True)
        self.c.connect("127.0.0.1", port, keepalive=5)
        self.c.loop_start()

    def _pub(self, kind: str, retain: bool = False, **fields) -> None:
        seq = None
        if kind != "state":
            self.seq += 1
            seq = self.seq
        info = self.c.publish(f"{self.base}/{kind}", _body(self.device, self.fleet, seq, **fields), qos=1,
                              retain=retain)
        info.wait_for_publish(5)

    def online(self) -> None:
        self._pub("state", retain=True, state="online", model=self.model, version=self.version, backend=self.backend)

    def telemetry(self, p50: float, p95: float, *, calls: int = 100, errors: int = 0, period: float = 10.0,
                  ota: str | None = None, cost_per_1k: float | None = None) -> None:
        t = {"backend": self.backend, "model": self.model, "model_version": self.version, "calls": calls,
             "requests": calls, "period_s": period, "throughput_per_s": calls / period,
             "latency_ms": {"p50": p50, "p95": p95, "p99": p95 * 1.1, "mean": p50},
             "errors": {"BackendError": errors} if errors else {}, "input_errors": 0, "busy_rejections": 0}
        if ota:
            t["ota"] = {"state": ota, "update_id": None, "active_slot": "a", "reason": None}
        if cost_per_1k is not None:
            t["cost_per_1k"] = cost_per_1k
        self._pub("telemetry", telemetry=t)

    def drift(self, psi: float, alerts: int = 0) -> None:
        tensors = {"x": {"kind": "inputs", "n": 400, "counts": [100, 100, 100, 100], "psi": psi, "js": psi / 4}}
        self._pub("drift", drift={"calls": 100, "tensors": tensors,
                                  "alerts": [{"tensor": "x", "kind": "inputs", "metrics": ["psi"]}] * alerts})

    def close(self, *, clean: bool = True) -> None:
        if clean:
            self._pub("state", retain=True, state="offline")
        self.c.disconnect()
        self.c.loop_stop()


def clear_retained(port: int, devices: list) -> None:
    """Empty the retained ``state`` of ``devices`` (FakeDevices or topic bases; the session's broker outlives
    the test)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"clear-{time.time_ns()}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    for d in devices:
        base = d if isinstance(d, str) else d.base
        c.publish(f"{base}/state", b"", qos=1, retain=True).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def wait_until(predicate, timeout: float = 10.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


def message(fleet: str, device: str, kind: str, seq: int | None, *, ts: float | None = None, **fields):
    """An accepted ``Message`` through the real parser (for tests that feed a ``FleetState`` directly)."""
    from edgepack.fleet.messages import Message, parse
    body = {"schema": 1, "ts": ts or time.time(), "device": device, "fleet": fleet, **fields}
    if seq is not None:
        body["seq"] = seq
    msg = parse(f"edgepack/v1/{fleet}/{device}/{kind}", json.dumps(body).encode(), now=time.time())
    assert isinstance(msg, Message), msg
    return msg


def feed(state, fleet: str, device: str, *, points: int = 3, p50: float = 1.0, model: str = "clf",
         psi: float | None = 0.1, t0: float | None = None) -> None:
    """Birth, then ``points`` telemetry periods (p50, p95 = 2 x p50, rising) and drift windows, 10 s apart."""
    t0 = time.time() - 10 * points if t0 is None else t0
    state.apply(message(fleet, device, "state", None, ts=t0, state="online", model=model, version="1.0.0",
                        backend="litert"))
    for i in range(points):
        lat = {"p50": p50 + i, "p95": 2 * (p50 + i), "p99": 3 * (p50 + i), "mean": p50 + i}
        state.apply(message(fleet, device, "telemetry", 2 * i + 1, ts=t0 + 10 * i, telemetry={
            "model": model, "model_version": "1.0.0", "backend": "litert", "calls": 100, "requests": 100,
            "throughput_per_s": 10.0, "latency_ms": lat, "errors": {}}))
        if psi is not None:
            state.apply(message(fleet, device, "drift", 2 * i + 2, ts=t0 + 10 * i + 1, drift={
                "calls": 100, "tensors": {"x": {"counts": [1, 2, 3], "psi": psi * (i + 1)}}, "alerts": []}))
