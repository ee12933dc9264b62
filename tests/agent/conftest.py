"""A real mosquitto for the agent tests: one per session on a free loopback port, stoppable and restartable
(``broker.stop()`` / ``broker.kill()`` / ``broker.start()`` keep the port), plus a recording subscriber.

Tests that need their own broker configuration (passwords, TLS) build a ``Broker`` in ``tmp_path``.
"""
from __future__ import annotations

import getpass
import itertools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt   # a test dependency (the runtime's "mqtt" extra)
import pytest


def under_ci() -> bool:
    """CI=true (or 1/yes): a missing broker is a broken setup, so the tests that need it fail, not skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def mosquitto_path() -> str | None:
    """mosquitto on PATH, else apt's /usr/sbin/mosquitto (a plain user's PATH often lacks /usr/sbin)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """``mosquitto -c <conf>`` listening on 127.0.0.1 only, with persistence in ``workdir``."""

    def __init__(self, workdir: Path, *, password_file: Path | None = None, extra: str = ""):
        self.port = free_port()
        self.workdir = workdir
        # run as the current user: as root, mosquitto would switch to 'mosquitto' and could not write here
        conf = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", "persistence true",
                f"persistence_location {workdir}/", "autosave_interval 1", "log_type error",
                f"log_dest file {workdir}/mosquitto.log"]
        conf += [f"password_file {password_file}", "allow_anonymous false"] if password_file else \
            ["allow_anonymous true"]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(conf) + "\n" + extra)
        self.proc: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.proc = subprocess.Popen([mosquitto_path() or "mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        log = (self.workdir / "mosquitto.log")
        raise RuntimeError(f"mosquitto did not start on port {self.port}: "
                           f"{log.read_text()[-500:] if log.exists() else 'no log'}")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistent sessions and exits."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without saving."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="session")
def mosquitto_bin():
    path = mosquitto_path()
    if path is None:
        why = "mosquitto is not installed: apt-get install mosquitto (scripts/test.sh does it)"
        if under_ci():
            pytest.fail(f"CI=true and {why}", pytrace=False)
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def session_broker(tmp_path_factory, mosquitto_bin):
    b = Broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def broker(session_broker):
    """The session's broker, running (restarted if an earlier test left it stopped)."""
    if not session_broker.running:
        session_broker.start()
    yield session_broker
    if not session_broker.running:
        session_broker.start()


_ids = itertools.count()


class Subscriber:
    """Collects JSON messages with a persistent QoS 1 session (it survives broker restarts)."""

    def __init__(self, port: int, topic: str, client_id: str | None = None):
        self.messages: list[tuple[str, dict | bytes, bool]] = []
        self.lock = threading.Lock()
        client_id = client_id or f"test-sub-{next(_ids)}-{time.time_ns()}"
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.c.on_message = self._on_message
        self.subscribed = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", port, keepalive=5)
        self.c.loop_start()
        self.subscribed.wait(5)

    def _on_message(self, client, userdata, msg):
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = msg.payload
        with self.lock:
            self.messages.append((msg.topic, body, msg.retain))

    def on(self, suffix: str) -> list:
        with self.lock:
            return [b for t, b, _ in self.messages if t.endswith(suffix)]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def close(self):
        self.c.disconnect()          # first: wakes the network thread, so loop_stop returns at once
        self.c.loop_stop()


@pytest.fixture
def subscribe(broker):
    subs = []

    def make(topic="edgepack/v1/#", client_id=None, port=None):
        s = Subscriber(port or broker.port, topic, client_id)
        subs.append(s)
        return s
    yield make
    for s in subs:
        s.close()
