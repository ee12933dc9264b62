"""A real mosquitto per test session on a free loopback port (stoppable, restartable), plus a subscriber."""
from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, workdir: Path, *, password_file: Path | None = None):
        self.port = _free_port()
        self.workdir = workdir
        # run as the current user: as root, mosquitto would switch to 'mosquitto' and could not write here
        conf = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", "persistence true",
                f"persistence_location {workdir}/", "autosave_interval 1", "log_type error",
                f"log_dest file {workdir}/mosquitto.log"]
        conf += [f"password_file {password_file}", "allow_anonymous false"] if password_file else \
            ["allow_anonymous true"]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="session")
def mosquitto_bin():
    path = shutil.which("mosquitto") or (Path("/usr/sbin/mosquitto") if Path("/usr/sbin/mosquitto").exists() else None)
    if path is None:
        pytest.skip("mosquitto is not installed (bash scripts/test.sh installs it)")
    return path


@pytest.fixture
def broker(tmp_path, mosquitto_bin):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """Collects JSON messages per topic with a persistent QoS 1 session (survives broker restarts)."""

    def __init__(self, port: int, topic: str, client_id: str = "test-sub"):
        self.messages: list[tuple[str, dict | bytes, bool]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic, qos=1)
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", port, keepalive=5)
        self.c.loop_start()

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
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def subscribe(broker):
    subs = []

    def make(topic="edgepack/v1/#", client_id=None):
        s = Subscriber(broker.port, topic, client_id or f"test-sub-{len(subs)}")
        subs.append(s)
        return s
    yield make
    for s in subs:
        s.close()
