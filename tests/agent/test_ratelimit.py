"""A device rate-limits host commands (issue #11, item 4): a token bucket per device (``command_rate`` per second,
``command_burst`` at once); a flood of ``cmd/*`` messages is answered with a few ``rate_limited`` events and
neither inference nor telemetry stops. Through the real mosquitto."""
from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from edgepack_runtime.agent import Agent
from edgepack_runtime.commands import TokenBucket
from edgepack_runtime.link import MqttLink
from edgepack_runtime.outbox import Outbox

RATE, BURST = 5.0, 10


class _Bundle:
    manifest = {"model": {"name": "stub", "version": "1"}}
    manifest_bytes = b"{}"


class StubRuntime:
    backend_name, inputs, bundle = "stub", [], _Bundle()

    def run(self, inputs):
        return {"y": inputs["x"]}


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_token_bucket_allows_a_burst_then_the_rate():
    clock = Clock()
    bucket = TokenBucket(2.0, 3, clock=clock)
    assert [bucket.take() for _ in range(5)] == [True, True, True, False, False]
    clock.t = 0.5                                    # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.t = 100.0                                  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


@pytest.fixture
def device(broker, subscribe, tmp_path):
    dev = f"rl-{uuid.uuid4().hex[:8]}"
    sub = subscribe(f"edgepack/v1/lab/{dev}/+")
    link = MqttLink(host="127.0.0.1", port=broker.port, device_id=dev, fleet="lab", outbox=Outbox(tmp_path / "o.db"),
                    backoff_base=0.05, command_rate=RATE, command_burst=BURST)
    agent = Agent(StubRuntime(), sink=link, telemetry_interval=0.2, drift=False).start()
    assert link.connected.wait(10)
    assert sub.wait_for(lambda: any(m.get("state") == "online" for m in sub.on("/state")))
    time.sleep(0.3)                                  # the link's SUBSCRIBE lands after its birth message
    yield dev, agent, link, sub
    agent.stop()


def _flood(port: int, topic: str, seconds: float) -> int:
    """Publish QoS 1 commands on ``topic`` as fast as the broker takes them for ``seconds``; returns how many."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"flood-{uuid.uuid4().hex[:8]}")
    c.max_queued_messages_set(200)
    c.connect("127.0.0.1", port)
    c.loop_start()
    sent, deadline = 0, time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            info = c.publish(topic, b'{"echo": %d}' % sent, qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                sent += 1
            else:
                time.sleep(0.001)                    # the client's own queue is full
        end = time.monotonic() + 10
        while c.want_write() and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        time.sleep(0.5)
        c.disconnect()
        c.loop_stop()
    return sent


def _settles(read, timeout: float = 30.0) -> bool:
    """Wait until ``read()`` gives the same value twice half a second apart."""
    last, deadline = read(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read()
        if now == last:
            return True
        last = now
    return False


def test_a_command_flood_is_rate_limited_and_does_not_starve_inference_or_telemetry(device, broker):
    dev, agent, link, sub = device
    served, stop = [], threading.Event()

    def infer():
        while not stop.is_set():
            served.append(agent.infer({"x": 1}, timeout=10) == {"y": 1})

    worker = threading.Thread(target=infer)
    telemetry_before = len(sub.on("/telemetry"))
    t0 = time.monotonic()
    worker.start()
    try:
        sent = _flood(broker.port, f"edgepack/v1/lab/{dev}/cmd/ping", seconds=2.0)
    finally:
        stop.set()
        worker.join(10)
    assert sub.wait_for(lambda: len(sub.on("/events")) >= 1)
    # the broker drops what overflows the device's queue; the rest is answered or counted as refused
    assert _settles(lambda: (link.counters["rate_limited"], len(sub.on("/events"))))
    elapsed = time.monotonic() - t0
    events = sub.on("/events")
    pongs = [e for e in events if e["type"] == "pong"]
    limited = [e for e in events if e["type"] == "rate_limited"]
    assert sent > 5 * (BURST + RATE * elapsed), (sent, elapsed)              # it was a flood
    assert BURST <= len(pongs) <= BURST + RATE * elapsed + 1, (len(pongs), elapsed)
    assert len(pongs) + link.counters["rate_limited"] <= sent
    assert link.counters["rate_limited"] > 10 * len(pongs), (link.counters, len(pongs))
    # a few events, not one per refused command, each saying how many were refused
    assert 1 <= len(limited) <= elapsed / 1.0 + 2, len(limited)
    assert sum(e["dropped"] for e in limited) <= link.counters["rate_limited"]
    assert all(e["verb"] == "ping" and e["rate_per_s"] == RATE and e["burst"] == BURST and "per second" in e["error"]
               for e in limited)
    # inference and telemetry went on during the flood
    assert served and all(served), len(served)
    assert len(sub.on("/telemetry")) - telemetry_before >= 3
    # and commands are served again once the bucket refills
    time.sleep(BURST / RATE)
    n = len(pongs)
    mqtt_publish(broker.port, f"edgepack/v1/lab/{dev}/cmd/ping", b'{"echo": "after"}')
    assert sub.wait_for(lambda: any(e.get("echo") == "after" for e in sub.on("/events")[n:]))


def mqtt_publish(port, topic, payload):
    import paho.mqtt.publish as publish
    publish.single(topic, payload, qos=1, hostname="127.0.0.1", port=port)
