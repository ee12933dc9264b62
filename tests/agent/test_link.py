"""The MQTT link against a real mosquitto: birth/will, no loss across a broker outage, flush on stop,
MQTT 3.1.1 fallback, TLS, and bad input (credentials, malformed commands)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid

import paho.mqtt.publish as publish
import pytest

from edgepack_runtime.link import MqttLink, backoff
from edgepack_runtime.outbox import Outbox

from .broker311 import Broker311
from .conftest import Broker


def _dev() -> str:
    return f"dev-{uuid.uuid4().hex[:8]}"          # one device per test: the session broker is shared


def _link(port, tmp_path, device_id, **kw):
    return MqttLink(host="127.0.0.1", port=port, device_id=device_id, fleet="f1",
                    outbox=Outbox(tmp_path / f"{device_id}.db"), backoff_base=0.05, backoff_cap=0.5, **kw)


def _wait(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


def test_birth_then_clean_offline(broker, subscribe, tmp_path):
    dev = _dev()
    sub = subscribe(f"edgepack/v1/f1/{dev}/state")
    with _link(broker.port, tmp_path, dev) as link:
        assert link.connected.wait(5)
        assert sub.wait_for(lambda: any(m["state"] == "online" for m in sub.on("state")))
        assert link.status()["protocol"] == "5"               # mosquitto 2 speaks MQTT 5
    assert sub.wait_for(lambda: sub.on("state")[-1]["state"] == "offline")
    late = subscribe(f"edgepack/v1/f1/{dev}/state")           # retained: a late monitor sees it too
    assert late.wait_for(lambda: late.on("state") and late.on("state")[-1]["state"] == "offline")


def test_last_will_when_the_device_dies(broker, subscribe, tmp_path):
    dev = _dev()
    sub = subscribe(f"edgepack/v1/f1/{dev}/state")
    code = textwrap.dedent(f"""
        import sys, time
        from edgepack_runtime.link import MqttLink
        from edgepack_runtime.outbox import Outbox
        link = MqttLink(host="127.0.0.1", port={broker.port}, device_id="{dev}", fleet="f1",
                        outbox=Outbox(sys.argv[1]), keepalive=1)
        link.start(); link.connected.wait(5); print("up", flush=True); time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "o9.db")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        assert sub.wait_for(lambda: any(m["state"] == "online" for m in sub.on("state")))
    finally:
        proc.kill()
        proc.wait()
    assert sub.wait_for(lambda: sub.on("state")[-1]["state"] == "offline", timeout=10)


def test_no_loss_across_a_broker_outage(broker, subscribe, tmp_path):
    dev = _dev()
    sub = subscribe(f"edgepack/v1/f1/{dev}/telemetry")
    n = 300
    with _link(broker.port, tmp_path, dev) as link:
        assert link.connected.wait(5)
        for i in range(n):
            link.publish("telemetry", {"i": i})
            if i == 100:
                broker.stop()                     # mid-stream: the broker goes away for a while
            if i == 200:
                assert _wait(lambda: not link.connected.is_set(), 5) and len(link.outbox) >= 99
                assert "broker" in link.status()["last_error"]
                broker.start()
            time.sleep(0.002)
        assert sub.wait_for(lambda: {m["seq"] for m in sub.on("telemetry")} >= set(range(1, n + 1)), timeout=20)
        assert _wait(lambda: len(link.outbox) == 0, 10)          # the outbox drains
        assert link.status()["reconnects"] >= 1
    seqs = [m["seq"] for m in sub.on("telemetry")]
    assert set(seqs) == set(range(1, n + 1))                      # every sequence number arrived
    by_seq = {}
    for m in sub.on("telemetry"):                                 # a repeated seq is the same message
        assert by_seq.setdefault(m["seq"], m["i"]) == m["i"]
    assert [by_seq[s] for s in range(1, n + 1)] == list(range(n))


def test_stop_flushes_the_outbox_then_says_offline(broker, subscribe, tmp_path):
    dev = _dev()
    sub = subscribe(f"edgepack/v1/f1/{dev}/#")
    link = _link(broker.port, tmp_path, dev)
    link.start()
    assert link.connected.wait(5)
    for i in range(100):
        link.publish("events", {"i": i})
    link.stop()                                                   # right away: queued messages still go out
    assert len(link.outbox) == 0
    assert sub.wait_for(lambda: len({m["seq"] for m in sub.on("/events")}) == 100)
    assert sub.wait_for(lambda: sub.on("/state") and sub.on("/state")[-1]["state"] == "offline")


def test_sequence_numbers_survive_a_restart(broker, subscribe, tmp_path):
    dev = _dev()
    sub = subscribe(f"edgepack/v1/f1/{dev}/events")
    for run in range(2):
        with _link(broker.port, tmp_path, dev) as link:           # same outbox file: a device reboot
            assert link.connected.wait(5)
            for i in range(3):
                link.publish("events", {"run": run, "i": i})
    assert sub.wait_for(lambda: len(sub.on("events")) >= 6)
    assert sorted({m["seq"] for m in sub.on("events")}) == [1, 2, 3, 4, 5, 6]


def test_refused_credentials_keep_queueing(tmp_path, mosquitto_bin):
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "edge", "right"], check=True)
    b = Broker(tmp_path, password_file=pw)
    b.start()
    try:
        with _link(b.port, tmp_path, "d-auth", username="edge", password="wrong") as link:
            for i in range(5):
                link.publish("telemetry", {"i": i})
            assert _wait(lambda: link.last_error is not None, 5)
            assert not link.connected.is_set()
            assert "refused" in link.last_error and "authori" in link.last_error.lower()
            assert len(link.outbox) == 5                 # nothing lost while refused
        with _link(b.port, tmp_path, "d-auth", username="edge", password="right") as link:
            assert link.connected.wait(5) and _wait(lambda: len(link.outbox) == 0, 5)   # right password: drained
    finally:
        b.stop()


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b"x" * (70 * 1024), b"\xff\xfe"],
                         ids=["not-json", "not-object", "oversized-70KiB", "not-utf8"])
def test_malformed_commands_are_reported_not_fatal(broker, subscribe, tmp_path, payload):
    dev = _dev()
    sub = subscribe(f"edgepack/v1/f1/{dev}/events")
    got = []
    with _link(broker.port, tmp_path, dev, on_command=lambda verb, body: got.append((verb, body))) as link:
        assert link.connected.wait(5)
        time.sleep(0.2)                                   # let the link's SUBSCRIBE land
        publish.single(f"edgepack/v1/f1/{dev}/cmd/ping", payload, qos=1, hostname="127.0.0.1", port=broker.port)
        publish.single(f"edgepack/v1/f1/{dev}/cmd/ping", b'{"n": 1}', qos=1, hostname="127.0.0.1", port=broker.port)
        assert sub.wait_for(lambda: any(m.get("type") == "bad_command" for m in sub.on("events")))
        assert sub.wait_for(lambda: got == [("ping", {"n": 1})])   # the link still works afterwards
        assert link.counters["bad_commands"] == 1
    event = [m for m in sub.on("events") if m.get("type") == "bad_command"][0]
    assert event["verb"] == "ping" and event["error"] and event["device"] == dev


def test_full_jitter_backoff_bounds():
    vals = [backoff(a, base=0.5, cap=4.0) for a in range(10) for _ in range(50)]
    assert min(vals) >= 0 and max(vals) <= 4.0
    assert max(backoff(1, base=0.5, cap=4.0) for _ in range(200)) <= 1.0
    assert max(backoff(8, base=0.5, cap=4.0) for _ in range(200)) > 2.0     # spread over the whole range


@pytest.mark.parametrize("mode", ["connack", "hangup"])
def test_falls_back_to_mqtt_311_when_the_broker_only_speaks_it(tmp_path, mode):
    b = Broker311(mode)
    try:
        with _link(b.port, tmp_path, "old") as link:
            assert link.connected.wait(10), link.last_error
            link.publish("telemetry", {"x": 1})
            assert _wait(lambda: len(link.outbox) == 0, 5)            # PUBACK from the 3.1.1 broker
        assert b.levels[0] == 5 and b.levels[-1] == 4 and link.protocol == "3.1.1"
        assert [t for t, _ in b.published].count("edgepack/v1/f1/old/telemetry") == 1
    finally:
        b.close()


def test_tls_and_mqtt_311(tmp_path, mosquitto_bin):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    b = Broker(tmp_path, extra=f"certfile {cert}\nkeyfile {key}\n")
    b.start()
    try:
        with MqttLink(host="127.0.0.1", port=b.port, device_id="tls1", fleet="f1", outbox=Outbox(tmp_path / "t.db"),
                      tls={"ca": str(cert)}, protocol="3.1.1", backoff_base=0.05) as link:
            assert link.connected.wait(10), link.last_error
            link.publish("telemetry", {"over": "tls"})
            assert _wait(lambda: len(link.outbox) == 0, 5)      # acknowledged over TLS, MQTT 3.1.1
        with _link(b.port, tmp_path, "tls2") as plain:           # plain TCP to a TLS listener: no connection
            assert _wait(lambda: plain.last_error is not None, 5)
            assert not plain.connected.is_set() and "TLS" in plain.last_error
    finally:
        b.stop()
