"""A broker that accepts the TCP connection and never answers (issue #11, item 7): the link says it did not
answer within N s, not that it "closed the connection"."""
from __future__ import annotations

import socket
import threading
import time

import pytest

import paho.mqtt  # noqa: E402,F401  (a test dependency: its absence is a failure, not a skip)

from edgepack_runtime.link import MqttLink  # noqa: E402
from edgepack_runtime.outbox import Outbox  # noqa: E402


@pytest.fixture
def silent_port():
    """A loopback listener that accepts connections and stays silent (never reads, never closes)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield server.getsockname()[1]
    stop.set()
    t.join(5)
    for s in held:
        s.close()
    server.close()


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def test_a_silent_broker_did_not_answer_within_the_timeout(silent_port, tmp_path):
    link = MqttLink(host="127.0.0.1", port=silent_port, device_id="quiet", outbox=Outbox(tmp_path / "o.db"),
                    backoff_base=0.05, backoff_cap=0.2, connect_timeout=0.5)
    with link:
        assert _wait(lambda: link.last_error and "did not answer" in link.last_error), link.last_error
        error = link.last_error
        assert f"127.0.0.1:{silent_port}" in error and "within 0.5 s" in error and "closed" not in error, error
        # the error is recorded as the attempt fails; the retry (counted as a reconnect) follows it
        assert _wait(lambda: link.counters["reconnects"] >= 1), link.counters
        assert not link.connected.is_set()


def test_the_connect_timeout_is_bounded_below_the_keepalive():
    with pytest.raises(ValueError, match="connect_timeout"):
        MqttLink(host="h", port=1, device_id="d", outbox=None, connect_timeout=0)
