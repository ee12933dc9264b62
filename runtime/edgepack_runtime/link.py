"""MQTT link to the fleet: birth/last-will state, QoS 1 publishing through the on-disk outbox, commands.

Topics (``edgepack/v1/<fleet>/<device>/...``): ``state`` (retained online/offline; the broker publishes the
offline will if the device vanishes), ``telemetry``, ``drift``, ``events``, ``ota/status``; commands arrive on
``cmd/<verb>``. Every payload is JSON with ``schema``, a per-device monotonic ``seq`` and ``ts``: every
message is written to the outbox first and deleted only when the broker acknowledges it (PUBACK), so a
broker outage loses nothing and a resend after a reconnect shows up as a duplicate ``seq``.
MQTT 5 is tried first and 3.1.1 used when the broker refuses it; reconnects use full-jitter backoff.
One thread owns the paho client: it connects, drains the outbox, and on ``stop()`` flushes what is queued
(up to ``flush_timeout``), publishes ``offline`` and disconnects.
"""
from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections import deque
from typing import Callable

from .commands import TokenBucket
from .errors import EdgepackError
from .outbox import Outbox
from .payload import MAX_COMMAND_BYTES, BadCommand, parse_payload
from .sink import SCHEMA, envelope
from .watchdog import Supervisor

__all__ = ["MAX_COMMAND_BYTES", "MqttLink", "backoff"]
log = logging.getLogger("edgepack_runtime.link")


def backoff(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


class MqttLink:
    """The fleet sink (see ``sink.py``): ``with MqttLink(host=..., port=..., device_id=..., outbox=...) as link``."""

    def __init__(self, *, host: str, port: int, device_id: str, fleet: str = "default", outbox: Outbox,
                 username: str | None = None, password: str | None = None, tls: bool | dict = False,
                 keepalive: int = 30, on_command: Callable[[str, dict], None] | None = None,
                 backoff_base: float = 0.5, backoff_cap: float = 30.0, protocol: str = "auto",
                 flush_timeout: float = 2.0, restart_base: float = 0.5, restart_cap: float = 30.0,
                 command_rate: float = 5.0, command_burst: int = 20, rate_limited_every: float = 1.0,
                 connect_timeout: float = 10.0):
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"protocol must be auto, 5 or 3.1.1, not {protocol!r}")
        if not 0 < connect_timeout <= 3600:
            raise ValueError(f"connect_timeout must be in (0, 3600] seconds, not {connect_timeout!r}")
        try:
            import paho.mqtt.client  # noqa: F401  (imported here: the runtime works without it)
        except ImportError:
            raise EdgepackError("MQTT needs paho-mqtt, which is not installed",
                                hint="pip install edgepack-runtime[mqtt], or run the agent without --broker") from None
        self.host, self.port, self.keepalive = host, port, keepalive
        self.device_id, self.fleet = device_id, fleet
        self.base = f"edgepack/v1/{fleet}/{device_id}"
        self.outbox = outbox
        self.on_command = on_command
        self.username, self.password, self.tls = username, password, tls
        self.backoff_base, self.backoff_cap, self.flush_timeout = backoff_base, backoff_cap, flush_timeout
        self.connect_timeout = connect_timeout   # TCP accepted but no CONNACK by then: "did not answer"
        self.protocol = "3.1.1" if protocol == "3.1.1" else "5"
        self._fallback = protocol == "auto"
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.counters = {"published": 0, "acked": 0, "reconnects": 0, "bad_commands": 0, "rate_limited": 0}
        self.commands_bucket = TokenBucket(command_rate, command_burst)   # per-device command rate limit
        self._limited = {"since": 0, "last_event": None, "every": rate_limited_every}
        self._inflight: dict[int, int] = {}     # paho mid -> outbox seq
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.supervisor = Supervisor(backoff_base=restart_base, backoff_cap=restart_cap)   # restarts _run
        self._client = None
        self._got_connack = False
        self.announce: dict = {}             # extra fields of the retained state message (profile, model, ota)
        self.routes: dict[str, tuple] = {}   # topic-suffix filter -> (handler(suffix, payload), qos), beside cmd/+
        self._direct: deque = deque(maxlen=256)   # send_now messages: never stored, dropped on a reconnect
        self._more = threading.Event()            # the outbox may hold something unsent: drain it

    # lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> "MqttLink":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = self.supervisor.spawn("edgepack-mqtt", self._run, self._stop)

    def stop(self, timeout: float | None = None) -> None:
        """Flush the outbox (bounded by ``flush_timeout``), publish ``offline``, disconnect, join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.flush_timeout + 3.0)

    # publishing -------------------------------------------------------------------------
    def topic(self, kind: str) -> str:
        return f"{self.base}/{kind}"

    def publish(self, kind: str, body: dict, *, retain: bool = False) -> int:
        """Queue ``body`` on ``<base>/<kind>`` (through the outbox); returns its sequence number."""
        seq = self.outbox.add(self.topic(kind), lambda s: envelope(s, self.device_id, self.fleet, body), 1, retain)
        with self._lock:
            self.counters["published"] += 1
        self._more.set()
        return seq

    def route(self, suffix: str, handler: Callable[[str, bytes], None], *, qos: int = 1) -> None:
        """Also subscribe to ``<base>/<suffix>`` (MQTT wildcards allowed) and hand its raw messages to
        ``handler(topic suffix, payload)`` on the link's thread (not JSON-parsed nor rate-limited like commands;
        the handler bounds its own input). Call before ``start()``."""
        self.routes[suffix] = (handler, qos)

    def send_now(self, kind: str, payload: bytes, *, qos: int = 1) -> bool:
        """Publish ``payload`` on ``<base>/<kind>`` without the outbox: False (nothing queued) while the link is
        down, and what is queued is dropped by a reconnect. For messages that are stale after one."""
        if not self.connected.is_set():
            return False
        self._direct.append((self.topic(kind), bytes(payload), qos))
        return True

    def status(self) -> dict:
        return {"kind": "mqtt", "broker": f"{self.host}:{self.port}", "connected": self.connected.is_set(),
                "protocol": self.protocol, "last_error": self.last_error, **self.counters,
                "outbox": self.outbox.stats()}

    # the network loop (the only thread that touches the paho client) --------------------------
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
        self._drop_client()          # a restart after a failure: the old client's socket is closed first
        while not self._stop.is_set():
            self.supervisor.beat()
            reached, self._got_connack, silent = False, False, False
            try:
                self._client = self._make_client()
                self._client.connect(self.host, self.port, self.keepalive)
                reached, answer_by = True, time.monotonic() + self.connect_timeout
                while self._client.loop(timeout=self._wait()) == 0:
                    self.supervisor.beat()
                    if not self._got_connack and time.monotonic() > answer_by:
                        silent = True             # accepted the TCP connection, never sent a CONNACK
                        break
                    if self.connected.is_set():
                        attempt = 0
                        if self._direct or self._more.is_set():
                            self._more.clear()    # first: a publish during the drain sets it again
                            self._drain()
                    if self._stop.is_set():
                        if self.connected.is_set():
                            self._goodbye()
                        break
            except (OSError, ValueError) as exc:
                self.last_error = f"cannot reach broker {self.host}:{self.port}: {exc}"
            except Exception as exc:  # whatever paho raises, the link thread must live on and retry
                self.last_error = f"MQTT link error with {self.host}:{self.port}: {type(exc).__name__}: {exc}"
                log.exception("MQTT link error")
            self.connected.clear()
            if self._stop.is_set():
                break
            if reached and not self._got_connack:
                what = (f"did not answer within {self.connect_timeout:g} s" if silent
                        else "closed the connection without answering")
                self.last_error = (f"broker {self.host}:{self.port} {what} (MQTT {self.protocol}); check the port, "
                                   "TLS (mqtts://) and the MQTT version")
                if silent:
                    self._drop_client()
                if self._fallback:   # a 3.1.1 broker may just hang up on a version-5 CONNECT: try the other
                    self.protocol = "3.1.1" if self.protocol == "5" else "5"
            with self._lock:
                self.counters["reconnects"] += 1
            self._stop.wait(backoff(attempt, base=self.backoff_base, cap=self.backoff_cap))
            attempt += 1

    def _drop_client(self) -> None:
        self.connected.clear()
        client, self._client = self._client, None
        sock = client.socket() if client is not None else None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        with self._lock:
            self._inflight.clear()               # unacked messages are still in the outbox: resent

    def _wait(self) -> float:
        """How long the network loop may sleep: briefly while there is something to send, else a quarter second
        (an idle device's link wakes 4 times a second, not 20; queued messages wait at most that long)."""
        return 0.02 if self._direct or self._more.is_set() else 0.25

    def _drain(self) -> None:
        """Send queued messages in order; the outbox keeps each until its PUBACK arrives."""
        while self._direct:
            topic, payload, qos = self._direct.popleft()
            self._client.publish(topic, payload, qos=qos)
        with self._lock:
            waiting = set(self._inflight.values())
        for seq, topic, payload, qos, retain in self.outbox.pending(200):
            if seq in waiting:
                continue
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            if info.rc != 0:
                self._more.set()                 # paho's queue is full: try again on the next turn
                return
            with self._lock:
                self._inflight[info.mid] = seq

    def _goodbye(self) -> None:
        """On stop: send what is queued (bounded in time), then the retained ``offline``, then DISCONNECT."""
        deadline = time.monotonic() + self.flush_timeout
        while len(self.outbox) and time.monotonic() < deadline and self.connected.is_set():
            self._drain()
            if self._client.loop(timeout=0.05) != 0:
                return
        info = self._client.publish(self.topic("state"), self._state_payload("offline"), qos=1, retain=True)
        deadline = time.monotonic() + 1.0
        while not info.is_published() and time.monotonic() < deadline:
            if self._client.loop(timeout=0.05) != 0:
                return
        self._client.disconnect()

    # callbacks (paho calls them on our loop thread) --------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        self._got_connack = True
        if reason_code.is_failure:
            self.last_error = f"broker {self.host}:{self.port} refused the connection: {reason_code}"
            log.warning("%s", self.last_error)
            if self._fallback and self.protocol == "5" and "protocol" in str(reason_code).lower():
                self.protocol = "3.1.1"          # an MQTT 3.1.1 broker: speak its language next time
            client.disconnect()
            return
        self.last_error = None
        with self._lock:
            self._inflight.clear()               # unacked messages are still in the outbox: resent
        self._direct.clear()
        self._more.set()                         # whatever the outbox kept while away goes out now
        self.connected.set()
        client.subscribe(self.topic("cmd/+"), qos=1)
        for suffix, (_, qos) in list(self.routes.items()):
            client.subscribe(self.topic(suffix), qos=qos)
        client.publish(self.topic("state"), self._state_payload("online"), qos=1, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        if self.connected.is_set() and not self._stop.is_set():
            self.last_error = f"connection to broker {self.host}:{self.port} lost: {reason_code}"
        self.connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None):
        with self._lock:
            seq = self._inflight.pop(mid, None)
            if seq is not None:
                self.counters["acked"] += 1
        if seq is not None:
            self.outbox.ack(seq)
            self._more.set()                     # a slot freed: more than one pending() page may be waiting

    def _on_message(self, client, userdata, msg):
        """One command (or a routed message); nothing may escape to paho, which would tear the connection down."""
        if self.routes and not msg.topic.startswith(self.topic("cmd/")):
            return self._routed(msg)
        verb = msg.topic.rsplit("/", 1)[-1]
        try:
            if not self.commands_bucket.take():
                self._rate_limited(verb)
                return
            self._command(verb, msg.payload)
        except Exception:  # answering failed too (the outbox?): log it, the link stays up
            log.exception("command %.100r could not be answered", verb)

    def _routed(self, msg) -> None:
        from paho.mqtt.client import topic_matches_sub
        for suffix, (handler, _) in list(self.routes.items()):
            if topic_matches_sub(self.topic(suffix), msg.topic):
                try:
                    handler(msg.topic[len(self.base) + 1:], msg.payload)
                except Exception:  # a failing handler must not kill the link
                    log.exception("handler of %.100r failed", msg.topic)
                return

    def _command(self, verb: str, payload: bytes) -> None:
        try:
            body = parse_payload(payload)        # bounded: size, nesting depth, JSON object
            if self.on_command is not None:
                self.on_command(verb, body)
        except BadCommand as exc:                 # the payload or the arguments are wrong, or an unknown verb
            self.bad_command(verb, exc)
        except Exception as exc:                  # a failing handler must not kill the link
            log.warning("command %.100r failed", verb, exc_info=True)
            self.publish("events", {"type": "command_failed", "verb": verb[:100],
                                    "error": f"{type(exc).__name__}: {exc}"[:500]})

    def _rate_limited(self, verb: str) -> None:
        """Count a command over the rate; tell the fleet at most once per ``rate_limited_every`` seconds how many
        were refused since the last ``rate_limited`` event (answering each one would be a flood of its own)."""
        lim, now = self._limited, time.monotonic()
        with self._lock:
            self.counters["rate_limited"] += 1
        lim["since"] += 1
        if lim["last_event"] is None or now - lim["last_event"] >= lim["every"]:
            bucket = self.commands_bucket
            self.publish("events", {"type": "rate_limited", "verb": verb[:100], "dropped": lim["since"],
                                    "rate_per_s": bucket.rate, "burst": bucket.burst,
                                    "error": f"more than {bucket.rate:g} commands per second (burst {bucket.burst}); "
                                             f"{lim['since']} refused since the last rate_limited event"})
            lim["since"], lim["last_event"] = 0, now

    def bad_command(self, verb: str, error: str | BadCommand) -> None:
        """Count a refused command and tell the fleet on ``events`` (``bad_command`` or ``unknown_command``)."""
        with self._lock:
            self.counters["bad_commands"] += 1
        exc = error if isinstance(error, BadCommand) else BadCommand(str(error))
        self.publish("events", exc.event(verb))

    def _state_payload(self, state: str) -> bytes:
        return json.dumps({**self.announce, "schema": SCHEMA, "state": state, "device": self.device_id,
                           "fleet": self.fleet, "ts": time.time()}).encode()
