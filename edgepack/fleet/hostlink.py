"""The host's MQTT connection for fleet commands: one thread owns a paho client, a fresh one per connection.

A fresh client per connection matters for flash: whatever the old connection had not delivered is dropped,
not replayed behind the sender's back (the device asks again for what it lacks, and the sender decides).
``on_connect()`` runs on every (re)connection (subscribe and republish there), ``on_message(topic, payload)``
for every message, ``pump()`` once per loop turn (publish more while ``inflight`` is low); all on the link's
thread, so they may publish directly. ``publish()`` from other threads is queued for that thread.
"""
from __future__ import annotations

import logging
import queue
import random
import ssl
import threading
import time
import uuid
from typing import Callable
from urllib.parse import urlparse

from ..errors import EdgepackError

log = logging.getLogger("edgepack.fleet.hostlink")


def parse_broker(url: str) -> tuple[str, int, bool]:
    """``mqtt://HOST[:PORT]`` or ``mqtts://HOST[:PORT]`` -> (host, port, tls); EdgepackError otherwise."""
    parsed = urlparse(url or "")
    if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname:
        raise EdgepackError(f"broker must look like mqtt://HOST:PORT or mqtts://HOST:PORT, not {url!r}")
    try:
        port = parsed.port
    except ValueError:
        raise EdgepackError(f"broker {url!r} has a bad port") from None
    tls = parsed.scheme == "mqtts"
    return parsed.hostname, port or (8883 if tls else 1883), tls


class HostLink:
    """``with HostLink(url, on_connect=..., on_message=..., pump=...) as link: link.wait_connected(5)``."""

    def __init__(self, url: str, *, on_connect: Callable[["HostLink"], None] = lambda link: None,
                 on_message: Callable[[str, bytes], None] = lambda t, p: None, pump: Callable[[], None] = lambda: None,
                 username: str | None = None, password: str | None = None, ca: str | None = None,
                 keepalive: int = 30, backoff_cap: float = 2.0):
        self.host, self.port, self.tls = parse_broker(url)
        self.url = url
        self.on_connect, self.on_message, self.pump = on_connect, on_message, pump
        self.username, self.password, self.ca, self.keepalive = username, password, ca, keepalive
        self.backoff_cap = backoff_cap
        self.connected = threading.Event()
        self.max_packet: int | None = None        # the broker's Maximum Packet Size (MQTT 5 CONNACK), if any
        self.last_error: str | None = None
        self.connections = 0
        self.inflight = 0                         # QoS 1 publishes not yet acknowledged on this connection
        self._on_ack: dict[int, Callable[[], None]] = {}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = None
        self._id = f"edgepack-host-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> "HostLink":
        self._thread = threading.Thread(target=self._run, name="edgepack-host-mqtt", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, flush: float = 2.0) -> None:
        """Send what is queued (up to ``flush`` seconds), disconnect, join the thread."""
        deadline = time.monotonic() + flush
        while (not self._queue.empty() or self.inflight) and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def wait_connected(self, timeout: float) -> None:
        if not self.connected.wait(timeout):
            raise EdgepackError(f"cannot reach the broker {self.url} within {timeout:g} s"
                                + (f": {self.last_error}" if self.last_error else ""),
                                hint="check the address, the port and that the broker is running")

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a publish for the link's thread (any thread may call it)."""
        self._queue.put((topic, payload, qos, retain))

    def send(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
             on_ack: Callable[[], None] | None = None) -> bool:
        """Publish now (link thread only: ``on_connect``/``on_message``/``pump``); False when not connected.
        ``on_ack`` runs when the broker acknowledges it (QoS 1)."""
        client = self._client
        if client is None or not self.connected.is_set():
            return False
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != 0:
            return False
        if qos:
            self.inflight += 1
            self._on_ack[info.mid] = on_ack or (lambda: None)
        return True

    def subscribe(self, topic: str, qos: int = 1) -> None:
        if self._client is not None:
            self._client.subscribe(topic, qos=qos)

    # the loop -------------------------------------------------------------------------------
    def _make(self):
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self._id, protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(1000)         # the sender bounds what it has in flight itself
        c.max_queued_messages_set(0)
        if self.username is not None:
            c.username_pw_set(self.username, self.password)
        if self.tls:
            c.tls_set(ca_certs=self.ca, cert_reqs=ssl.CERT_REQUIRED)
        c.on_connect, c.on_disconnect, c.on_publish = self._connected, self._disconnected, self._acked
        c.on_message = lambda client, userdata, msg: self._message(msg)
        return c

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._client = self._make()
                self._client.connect(self.host, self.port, self.keepalive)
                while not self._stop.is_set() and self._client.loop(timeout=0.005) == 0:
                    if self.connected.is_set():
                        attempt = 0
                        self._flush_queue()
                        self.pump()
            except (OSError, ValueError) as exc:
                self.last_error = f"cannot reach broker {self.host}:{self.port}: {exc}"
            except Exception as exc:  # noqa: BLE001  (a callback's bug must not end the link; it is logged)
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("host MQTT link error")
            self._lost()
            if not self._stop.is_set():
                self._stop.wait(random.uniform(0, min(self.backoff_cap, 0.05 * 2 ** attempt)))
                attempt += 1

    def _lost(self) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        client, self._client = self._client, None
        if client is not None:
            try:
                if was and self._stop.is_set():
                    client.disconnect()
                    client.loop(timeout=0.05)
                sock = client.socket()
                if sock is not None:
                    sock.close()
            except Exception:  # noqa: BLE001
                pass
        self.inflight, self._on_ack = 0, {}

    def _flush_queue(self) -> None:
        while True:
            try:
                topic, payload, qos, retain = self._queue.get_nowait()
            except queue.Empty:
                return
            self.send(topic, payload, qos=qos, retain=retain)

    def _connected(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker {self.host}:{self.port} refused the connection: {reason_code}"
            client.disconnect()
            return
        self.max_packet = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
        self.connections += 1
        self.last_error = None
        self.connected.set()
        self.on_connect(self)

    def _disconnected(self, client, userdata, flags, reason_code, properties=None) -> None:
        if self.connected.is_set() and not self._stop.is_set():
            self.last_error = f"connection to {self.host}:{self.port} lost: {reason_code}"
        self.connected.clear()

    def _acked(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        done = self._on_ack.pop(mid, None)
        if done is not None:
            self.inflight -= 1
            done()

    def _message(self, msg) -> None:
        try:
            self.on_message(msg.topic, msg.payload)
        except Exception:  # noqa: BLE001  (a bad message must not tear the connection down)
            log.exception("handling %.100r failed", msg.topic)
