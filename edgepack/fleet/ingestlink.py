"""The monitor's MQTT subscription: one thread runs a paho client (MQTT 5, or 3.1.1 when the broker refuses 5),
reconnecting by itself, and hands every message's topic and payload to ``on_message``.

Filters: ``edgepack/v1/<fleet>/+/+`` (state, telemetry, drift, events, and any unknown kind, so it is counted)
and ``edgepack/v1/<fleet>/+/ota/status``; never ``cmd/...`` or the flash chunks. With a share group the
filters are ``$share/<group>/...`` and ``state`` is subscribed directly as well (retained messages are not
sent to shared subscriptions).
"""
from __future__ import annotations

import logging
import ssl
import threading
import uuid

from .hostlink import parse_broker

log = logging.getLogger("edgepack.fleet.ingest")


def filters(fleet: str, share_group: str | None) -> list[str]:
    """The topic filters a monitor subscribes to."""
    base = [f"edgepack/v1/{fleet}/+/+", f"edgepack/v1/{fleet}/+/ota/status"]
    if not share_group:
        return base
    return [f"$share/{share_group}/{t}" for t in base] + [f"edgepack/v1/{fleet}/+/state"]


class IngestLink:
    def __init__(self, url: str, *, on_message, fleet: str = "+", share_group: str | None = None, qos: int = 1,
                 username: str | None = None, password: str | None = None, ca: str | None = None,
                 client_id: str | None = None, protocol: str = "auto", keepalive: int = 30):
        if protocol not in ("auto", "5", "3.1.1"):
            raise ValueError(f"protocol must be auto, 5 or 3.1.1, not {protocol!r}")
        if fleet != "+" and (not fleet or any(c in fleet for c in "/+#")):
            raise ValueError(f"fleet must be a name without '/', '+' or '#' (or '+' for every fleet), not {fleet!r}")
        if share_group is not None and (not share_group or any(c in share_group for c in "/+#")):
            raise ValueError(f"a share group is a name without '/', '+' or '#', not {share_group!r}")
        self.host, self.port, self.tls = parse_broker(url)
        self.url, self.on_message, self.qos = url, on_message, qos
        self.filters = filters(fleet, share_group)
        self.username, self.password, self.ca, self.keepalive = username, password, ca, keepalive
        self.client_id = client_id or f"edgepack-monitor-{uuid.uuid4().hex[:12]}"
        self.persistent = client_id is not None      # a named monitor keeps its session (QoS 1 queued meanwhile)
        self.protocol = "3.1.1" if protocol == "3.1.1" else "5"
        self._fallback = protocol == "auto"
        self.connected, self.subscribed = threading.Event(), threading.Event()
        self.last_error: str | None = None
        self.connections = 0
        self._answered = self._switch = False        # a CONNACK came on the current client; switch protocol
        self._stop = threading.Event()
        self._client = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="edgepack-monitor-mqtt", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def status(self) -> dict:
        return {"broker": self.url, "connected": self.connected.is_set(), "protocol": self.protocol,
                "subscriptions": list(self.filters), "connections": self.connections, "last_error": self.last_error}

    def _make(self):
        import paho.mqtt.client as mqtt
        v5 = self.protocol == "5"
        kwargs = {} if v5 else {"clean_session": not self.persistent}
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, **kwargs)
        if self.username is not None:
            c.username_pw_set(self.username, self.password)
        if self.tls:
            c.tls_set(ca_certs=self.ca, cert_reqs=ssl.CERT_REQUIRED)
        c.on_connect, c.on_disconnect = self._connected, self._disconnected
        c.on_message = self._message
        c.on_subscribe = lambda *a: self.subscribed.set()
        return c

    def _run(self) -> None:
        """One client per connection attempt (a protocol switch needs a new one); paho's loop on this thread."""
        delay = 0.1
        while not self._stop.is_set():
            client = self._client = self._make()
            self._answered = self._switch = False
            try:
                self._connect(client)
                while not self._stop.is_set() and not self._switch and client.loop(timeout=0.1) == 0:
                    if self.connected.is_set():
                        delay = 0.1
                if self._stop.is_set() and self.connected.is_set():
                    client.disconnect()          # a clean DISCONNECT: a named monitor's session is kept
                    client.loop(timeout=0.2)
            except (OSError, ValueError) as exc:
                self.last_error = f"cannot reach broker {self.host}:{self.port}: {exc}"
            except Exception as exc:  # noqa: BLE001  (whatever paho raises: retry)
                self.last_error = f"MQTT error with {self.host}:{self.port}: {type(exc).__name__}: {exc}"
                log.exception("monitor MQTT error")
            self._drop(client)
            self._stop.wait(delay)
            delay = min(5.0, delay * 2)

    def _connect(self, client) -> None:
        if self.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 86400 if self.persistent else 0
            client.connect(self.host, self.port, self.keepalive, clean_start=not self.persistent, properties=props)
        else:
            client.connect(self.host, self.port, self.keepalive)

    def _drop(self, client) -> None:
        self.connected.clear()
        self.subscribed.clear()
        sock = client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _connected(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._answered = True
        if reason_code.is_failure:
            self.last_error = f"broker {self.host}:{self.port} refused the connection: {reason_code}"
            if self._fallback and self.protocol == "5" and "protocol" in str(reason_code).lower():
                self.protocol = "3.1.1"
                self._switch = True
            client.disconnect()
            return
        self.connections += 1
        self.last_error = None
        self.connected.set()
        client.subscribe([(t, self.qos) for t in self.filters])

    def _disconnected(self, client, userdata, flags, reason_code, properties=None) -> None:
        if not self._answered and self._fallback and not self._stop.is_set():
            # hung up on the CONNECT without a CONNACK: an old broker refusing MQTT 5 (or 3.1.1): try the other
            self.protocol = "3.1.1" if self.protocol == "5" else "5"
            self.last_error = f"broker {self.host}:{self.port} closed the connection without answering"
            self._switch = True
        elif self.connected.is_set() and not self._stop.is_set():
            self.last_error = f"connection to {self.host}:{self.port} lost: {reason_code}"
        self.connected.clear()
        self.subscribed.clear()

    def _message(self, client, userdata, msg) -> None:
        try:
            self.on_message(msg.topic, msg.payload)
        except Exception:  # noqa: BLE001  (nothing may escape to paho: it would drop the connection)
            log.exception("handling %.100r failed", msg.topic)
