"""MQTT link to the fleet: birth/last-will state, QoS 1 publishing through the on-disk outbox, commands.

Topics (``edgepack/v1/<fleet>/<device>/...``): ``state`` (retained online/offline; the broker publishes the
offline will if the device vanishes), ``telemetry``, ``drift``, ``events``, ``ota/status``; commands arrive on
``cmd/<verb>``. Every payload is JSON with ``schema``, a per-device monotonic ``seq`` and ``ts``: every
message is written to the outbox first and deleted only when the broker acknowledges it (PUBACK), so a
broker outage loses nothing and a resend after a reconnect shows up as a duplicate ``seq``.
MQTT 5 is tried first and 3.1.1 used when the broker refuses it; reconnects use full-jitter backoff.
"""
from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from typing import Callable

from .outbox import Outbox

SCHEMA = 1
MAX_COMMAND_BYTES = 64 * 1024
log = logging.getLogger("edgepack_runtime.link")


def backoff(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


class MqttLink:
    def __init__(self, *, host: str, port: int, device_id: str, fleet: str = "default", outbox: Outbox,
                 username: str | None = None, password: str | None = None, tls: bool | dict = False,
                 keepalive: int = 30, on_command: Callable[[str, dict], None] | None = None,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0, protocol: str = "auto"):
        self.host, self.port, self.keepalive = host, port, keepalive
        self.device_id, self.fleet = device_id, fleet
        self.base = f"edgepack/v1/{fleet}/{device_id}"
        self.outbox = outbox
        self.on_command = on_command
        self.username, self.password, self.tls = username, password, tls
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"protocol must be auto, 5 or 3.1.1, not {protocol!r}")
        self.protocol = "3.1.1" if protocol == "3.1.1" else "5"
        self._fallback = protocol == "auto"
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.counters = {"published": 0, "acked": 0, "reconnects": 0, "bad_commands": 0}
        self._inflight: dict[int, int] = {}     # paho mid -> outbox seq
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._client = None

    # lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> "MqttLink":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgepack-mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._client is not None and self.connected.is_set():
            self._publish_state("offline")   # a clean goodbye; the will covers the unclean one
            self._client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout)

    # publishing -------------------------------------------------------------------------
    def topic(self, kind: str) -> str:
        return f"{self.base}/{kind}"

    def publish(self, kind: str, body: dict, *, retain: bool = False) -> int:
        """Queue ``body`` on ``<base>/<kind>`` (through the outbox); returns its sequence number."""
        seq = self.outbox.next_seq()
        payload = json.dumps({"schema": SCHEMA, "seq": seq, "ts": time.time(), "device": self.device_id,
                              "fleet": self.fleet, **body}, default=float).encode()
        self.outbox.put(seq, self.topic(kind), payload, 1, retain)
        self.counters["published"] += 1
        return seq

    # the network loop -------------------------------------------------------------------
    def _make_client(self):
        import paho.mqtt.client as mqtt
        proto = mqtt.MQTTv5 if self.protocol == "5" else mqtt.MQTTv311
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgepack-{self.fleet}-{self.device_id}",
                        protocol=proto)
        if self.username is not None:
            c.username_pw_set(self.username, self.password)
        if self.tls:
            opts = self.tls if isinstance(self.tls, dict) else {}
            c.tls_set(ca_certs=opts.get("ca"), certfile=opts.get("cert"), keyfile=opts.get("key"),
                      cert_reqs=ssl.CERT_REQUIRED)
        c.will_set(self.topic("state"), self._state_payload("offline"), qos=1, retain=True)
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_publish, c.on_message = self._on_publish, self._on_message
        return c

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._client = self._make_client()
                self._client.connect(self.host, self.port, self.keepalive)
                while not self._stop.is_set():
                    rc = self._client.loop(timeout=0.05)
                    if rc != 0:
                        break
                    if self.connected.is_set():
                        attempt = 0
                        self._drain()
            except (OSError, ValueError) as exc:
                self.last_error = f"cannot reach broker {self.host}:{self.port}: {exc}"
            self.connected.clear()
            if self._stop.is_set():
                break
            self.counters["reconnects"] += 1
            self._stop.wait(backoff(attempt, base=self.backoff_base, cap=self.backoff_cap))
            attempt += 1

    def _drain(self) -> None:
        """Send queued messages in order; the outbox keeps each until its PUBACK arrives."""
        with self._lock:
            waiting = set(self._inflight.values())
        for seq, topic, payload, qos, retain in self.outbox.pending(200):
            if seq in waiting:
                continue
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            if info.rc != 0:
                return
            with self._lock:
                self._inflight[info.mid] = seq

    # callbacks (paho's thread = our loop thread) -------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning("%s", self.last_error)
            if self._fallback and self.protocol == "5" and "protocol" in str(reason_code).lower():
                self.protocol = "3.1.1"          # an MQTT 3.1.1 broker: speak its language next time
            client.disconnect()
            return
        self.last_error = None
        with self._lock:
            self._inflight.clear()               # unacked messages are still in the outbox: resent
        self.connected.set()
        client.subscribe(self.topic("cmd/+"), qos=1)
        self._publish_state("online")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        self.connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None):
        with self._lock:
            seq = self._inflight.pop(mid, None)
        if seq is not None:
            self.outbox.ack(seq)
            self.counters["acked"] += 1

    def _on_message(self, client, userdata, msg):
        verb = msg.topic.rsplit("/", 1)[-1]
        try:
            if len(msg.payload) > MAX_COMMAND_BYTES:
                raise ValueError(f"payload of {len(msg.payload)} bytes exceeds {MAX_COMMAND_BYTES}")
            body = json.loads(msg.payload.decode("utf-8")) if msg.payload else {}
            if not isinstance(body, dict):
                raise ValueError("payload must be a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            self.counters["bad_commands"] += 1
            self.publish("events", {"type": "bad_command", "verb": verb, "error": str(exc)[:200]})
            return
        if self.on_command is not None:
            try:
                self.on_command(verb, body)
            except Exception as exc:  # a failing handler must not kill the link
                self.publish("events", {"type": "command_failed", "verb": verb, "error": str(exc)[:200]})

    def _state_payload(self, state: str) -> bytes:
        return json.dumps({"schema": SCHEMA, "state": state, "device": self.device_id, "fleet": self.fleet,
                           "ts": time.time()}).encode()

    def _publish_state(self, state: str) -> None:
        self._client.publish(self.topic("state"), self._state_payload(state), qos=1, retain=True)
