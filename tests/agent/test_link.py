"""The MQTT link against a real mosquitto: birth/will, no loss across a broker outage, bad input."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from edgepack_runtime.link import MqttLink, backoff
from edgepack_runtime.outbox import Outbox

from .conftest import Broker


def _link(broker, tmp_path, **kw):
    return MqttLink(host="127.0.0.1", port=broker.port, device_id=kw.pop("device_id", "dev1"), fleet="f1",
                    outbox=Outbox(tmp_path / "outbox.db"), backoff_base=0.05, backoff_cap=0.5, **kw)


def test_birth_then_clean_offline(broker, subscribe, tmp_path):
    sub = subscribe("edgepack/v1/f1/dev1/state")
    with _link(broker, tmp_path) as link:
        assert link.connected.wait(5)
        assert sub.wait_for(lambda: any(m["state"] == "online" for m in sub.on("state")))
    assert sub.wait_for(lambda: sub.on("state")[-1]["state"] == "offline")
    late = subscribe("edgepack/v1/f1/dev1/state", client_id="late")   # retained: a late monitor sees it too
    assert late.wait_for(lambda: late.on("state") and late.on("state")[-1]["state"] == "offline")


def test_last_will_when_the_device_dies(broker, subscribe, tmp_path):
    sub = subscribe("edgepack/v1/f1/dev9/state")
    code = textwrap.dedent(f"""
        import sys, time
        from edgepack_runtime.link import MqttLink
        from edgepack_runtime.outbox import Outbox
        link = MqttLink(host="127.0.0.1", port={broker.port}, device_id="dev9", fleet="f1",
                        outbox=Outbox(sys.argv[1]), keepalive=1)
        link.start(); link.connected.wait(5); print("up", flush=True); time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "o9.db")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    assert sub.wait_for(lambda: any(m["state"] == "online" for m in sub.on("state")))
    proc.kill()
    proc.wait()
    assert sub.wait_for(lambda: sub.on("state")[-1]["state"] == "offline", timeout=10)


def test_no_loss_across_a_broker_outage(broker, subscribe, tmp_path):
    sub = subscribe("edgepack/v1/f1/dev1/telemetry")
    n = 300
    with _link(broker, tmp_path) as link:
        assert link.connected.wait(5)
        for i in range(n):
            link.publish("telemetry", {"i": i})
            if i == 100:
                broker.stop()                     # mid-stream: the broker goes away for a while
            if i == 200:
                time.sleep(1.0)
                assert not link.connected.is_set() and len(link.outbox) > 0
                broker.start()
            time.sleep(0.002)
        assert sub.wait_for(lambda: {m["seq"] for m in sub.on("telemetry")} >= set(range(1, n + 1)), timeout=20)
        assert link.outbox.__len__() == 0 or sub.wait_for(lambda: len(link.outbox) == 0, timeout=5)
    seqs = [m["seq"] for m in sub.on("telemetry")]
    assert set(seqs) == set(range(1, n + 1))           # every sequence number arrived
    dupes = len(seqs) - len(set(seqs))
    assert dupes < n                                    # resends are visible as repeated seq, never as gaps
    assert [m["i"] for m in sorted({m["seq"]: m for m in sub.on("telemetry")}.values(), key=lambda m: m["seq"])] \
        == list(range(n))


def test_refused_credentials_keep_queueing(tmp_path, mosquitto_bin):
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "edge", "right"], check=True)
    b = Broker(tmp_path, password_file=pw)
    b.start()
    try:
        with _link(b, tmp_path, username="edge", password="wrong") as link:
            for i in range(5):
                link.publish("telemetry", {"i": i})
            deadline = time.monotonic() + 5
            while link.last_error is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not link.connected.is_set()
            assert "refused" in link.last_error and ("authori" in link.last_error.lower()
                                                      or "password" in link.last_error.lower())
            assert len(link.outbox) == 5                 # nothing lost while refused
    finally:
        b.stop()


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b"x" * (70 * 1024), b"\xff\xfe"])
def test_malformed_commands_are_reported_not_fatal(broker, subscribe, tmp_path, payload):
    sub = subscribe("edgepack/v1/f1/dev1/events")
    got = []
    with _link(broker, tmp_path, on_command=lambda verb, body: got.append((verb, body))) as link:
        assert link.connected.wait(5)
        time.sleep(0.2)
        import paho.mqtt.publish as publish
        publish.single("edgepack/v1/f1/dev1/cmd/ping", payload, qos=1, hostname="127.0.0.1", port=broker.port)
        publish.single("edgepack/v1/f1/dev1/cmd/ping", b'{"n": 1}', qos=1, hostname="127.0.0.1", port=broker.port)
        assert sub.wait_for(lambda: any(m.get("type") == "bad_command" for m in sub.on("events")))
        assert sub.wait_for(lambda: got == [("ping", {"n": 1})])   # the link still works afterwards
        assert link.counters["bad_commands"] == 1


def test_full_jitter_backoff_bounds():
    vals = [backoff(a, base=0.5, cap=4.0) for a in range(10) for _ in range(50)]
    assert min(vals) >= 0 and max(vals) <= 4.0
    assert max(backoff(1, base=0.5, cap=4.0) for _ in range(200)) <= 1.0


def test_tls_and_mqtt_311(tmp_path, mosquitto_bin, subscribe):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    b = Broker(tmp_path)
    b.conf.write_text(b.conf.read_text() + f"certfile {cert}\nkeyfile {key}\n")
    b.start()
    try:
        with MqttLink(host="127.0.0.1", port=b.port, device_id="tls1", fleet="f1", outbox=Outbox(tmp_path / "t.db"),
                      tls={"ca": str(cert)}, protocol="3.1.1", backoff_base=0.05) as link:
            assert link.connected.wait(10), link.last_error
            link.publish("telemetry", {"over": "tls"})
            deadline = time.monotonic() + 5
            while len(link.outbox) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(link.outbox) == 0                     # acknowledged over TLS, MQTT 3.1.1
        with MqttLink(host="127.0.0.1", port=b.port, device_id="tls2", fleet="f1", outbox=Outbox(tmp_path / "u.db"),
                      backoff_base=0.05) as plain:             # plain TCP to a TLS listener: no connection
            time.sleep(1.0)
            assert not plain.connected.is_set()
    finally:
        b.stop()
