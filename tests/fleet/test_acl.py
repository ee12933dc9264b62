"""The operator guide's broker setup (docs/operator.md), on a real mosquitto started with the exact files
``edgepack fleet acl`` writes: per-device users, ACLs that keep each device to its own topics, the host user
reading everything and sending commands, wrong credentials refused."""
from __future__ import annotations

import itertools
import json
import re
import stat
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack.errors import EdgepackError
from edgepack.fleet.aclgen import ID, acl_text, device_ids
from tests.agent.conftest import Broker, free_port

FLEET = "plant"
_ids = itertools.count()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, mosquitto_bin):
    """mosquitto with the generated password and ACL files; yields (broker, credentials, conf folder)."""
    d = tmp_path_factory.mktemp("acl")
    result = CliRunner().invoke(app, ["fleet", "acl", "--fleet", FLEET, "--devices", "dev-a,dev-b", "--out",
                                      str(d / "conf"), "--json"])
    assert result.exit_code == 0, result.output
    creds = json.loads((d / "conf" / "credentials.json").read_text())
    b = Broker(d, password_file=d / "conf" / "passwd", extra=f"acl_file {d / 'conf' / 'acl'}\n")
    b.start()
    yield b, creds, d / "conf"
    b.stop()


class Client:
    """A paho client that records its CONNACK, SUBACKs, PUBACKs and messages."""

    def __init__(self, port, user, password, *, protocol=mqtt.MQTTv5, will=None):
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{next(_ids)}", protocol=protocol)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.connack, self.messages, self.pubacks = None, [], {}
        self.c.on_connect = lambda c, u, f, rc, p=None: setattr(self, "connack", rc)
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.c.on_publish = lambda c, u, mid, rc, p=None: self.pubacks.__setitem__(mid, rc)
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        assert wait(lambda: self.connack is not None)

    def subscribe(self, topic):
        done = []
        self.c.on_subscribe = lambda *a: done.append(1)
        self.c.subscribe(topic, qos=1)
        assert wait(lambda: done)

    def publish(self, topic, payload: bytes):
        info = self.c.publish(topic, payload, qos=1)
        assert wait(lambda: info.mid in self.pubacks)
        return self.pubacks[info.mid]

    def got(self, payload: bytes) -> bool:
        return any(p == payload for _, p in self.messages)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def wait(pred, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def login(guarded, user, **kw) -> Client:
    b, creds, _ = guarded
    pw = creds["host"]["password"] if user == creds["host"]["username"] else creds["devices"][user]
    c = Client(b.port, user, pw, **kw)
    assert not c.connack.is_failure, c.connack
    return c


def test_the_generated_files(guarded):
    _, creds, conf = guarded
    acl = (conf / "acl").read_text()
    assert ("user dev-a\ntopic write edgepack/v1/plant/dev-a/#\ntopic read edgepack/v1/plant/dev-a/cmd/#\n"
            "topic read edgepack/v1/plant/dev-a/ota/offer\ntopic read edgepack/v1/plant/dev-a/ota/data/#\n") in acl
    assert "user edgepack-host\ntopic read edgepack/v1/#\ntopic write edgepack/v1/+/+/cmd/#\n" in acl
    passwd = (conf / "passwd").read_text()
    assert sorted(line.split(":")[0] for line in passwd.splitlines()) == ["dev-a", "dev-b", "edgepack-host"]
    assert all(line.split(":", 1)[1].startswith("$7$") for line in passwd.splitlines())    # hashed (PBKDF2)
    assert not any(pw in passwd for pw in creds["devices"].values())
    for secret in (conf / "credentials.json", conf / "passwd", conf / "agents" / "dev-a.toml"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert f'password = "{creds["devices"]["dev-b"]}"' in (conf / "agents" / "dev-b.toml").read_text()


def test_rerun_keeps_passwords_and_adds_devices(tmp_path):
    runner = CliRunner()
    args = ["fleet", "acl", "--fleet", "f", "--out", str(tmp_path), "--prefix", "d-"]
    assert runner.invoke(app, args + ["--devices", "2"]).exit_code == 0
    first = json.loads((tmp_path / "credentials.json").read_text())
    assert runner.invoke(app, args + ["--devices", "3"]).exit_code == 0
    second = json.loads((tmp_path / "credentials.json").read_text())
    assert list(second["devices"]) == ["d-0001", "d-0002", "d-0003"] and second["host"] == first["host"]
    assert {k: second["devices"][k] for k in first["devices"]} == first["devices"]
    other = runner.invoke(app, ["fleet", "acl", "--fleet", "g", "--out", str(tmp_path), "--devices", "1"])
    assert other.exit_code == 1 and "holds fleet 'f'" in other.output


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311])
def test_a_device_cannot_publish_under_another_device(guarded, protocol):
    host = login(guarded, "edgepack-host")
    host.subscribe("edgepack/v1/#")
    a = login(guarded, "dev-a", protocol=protocol)
    try:
        tag = f"{protocol}-{time.time_ns()}".encode()
        for kind in ("telemetry", "state", "events", "ota/status"):
            rc = a.publish(f"edgepack/v1/{FLEET}/dev-b/{kind}", b"forged " + tag)
            if protocol == mqtt.MQTTv5:                     # MQTT 5 tells the sender; 3.1.1 drops it silently
                assert rc == "Not authorized", (kind, rc)
        a.publish(f"edgepack/v1/{FLEET}/dev-a/telemetry", b"own " + tag)
        a.publish(f"edgepack/v1/other-fleet/dev-a/telemetry", b"forged " + tag)
        assert wait(lambda: host.got(b"own " + tag))      # the device's own message arrives ...
        time.sleep(0.2)
        assert not host.got(b"forged " + tag), host.messages  # ... the forged ones, sent before it, never do
    finally:
        a.close()
        host.close()


def test_a_device_cannot_read_another_devices_commands(guarded):
    host = login(guarded, "edgepack-host")
    a, b = login(guarded, "dev-a"), login(guarded, "dev-b")
    try:
        a.subscribe(f"edgepack/v1/{FLEET}/dev-b/cmd/#")          # granted by mosquitto, but nothing is delivered
        a.subscribe("edgepack/v1/#")
        b.subscribe(f"edgepack/v1/{FLEET}/dev-b/cmd/+")
        assert host.publish(f"edgepack/v1/{FLEET}/dev-b/cmd/ping", b"for b") == "Success"
        assert host.publish(f"edgepack/v1/{FLEET}/dev-b/ota/offer", b"offer for b") == "Success"
        assert host.publish(f"edgepack/v1/{FLEET}/dev-a/cmd/ping", b"for a") == "Success"
        assert wait(lambda: b.got(b"for b") and a.got(b"for a"))
        time.sleep(0.2)
        assert not a.got(b"for b") and not a.got(b"offer for b"), a.messages
        b.publish(f"edgepack/v1/{FLEET}/dev-b/telemetry", b"b's telemetry")
        time.sleep(0.3)
        assert not a.got(b"b's telemetry")                   # nor another device's reports
    finally:
        for c in (a, b, host):
            c.close()


def test_the_host_reads_all_and_commands_a_real_agent(guarded, tmp_path):
    """A real agent configured from agents/dev-a.toml: the host sees it online, its telemetry, and its answer."""
    from edgepack_runtime import agentcli
    from edgepack_runtime.cli import build_parser
    from tests.runtime.rt_helpers import add_bundle
    broker, _, conf = guarded
    host = login(guarded, "edgepack-host")
    host.subscribe(f"$share/monitors/edgepack/v1/{FLEET}/#")     # monitors scale out with shared subscriptions
    args = build_parser().parse_args(["agent", "--config", str(conf / "agents" / "dev-a.toml"), "--bundle",
                                      str(add_bundle(tmp_path / "m.edgepack")), "--broker",
                                      f"mqtt://127.0.0.1:{broker.port}", "--telemetry-interval", "0.3",
                                      "--outbox", str(tmp_path / "o.db")])
    agent = agentcli.make_agent(agentcli.settings(args)).start()
    base = f"edgepack/v1/{FLEET}/dev-a"
    try:
        assert wait(lambda: any(t == f"{base}/state" and b'"online"' in p for t, p in host.messages))
        assert wait(lambda: any(t == f"{base}/telemetry" for t, _ in host.messages))
        assert host.publish(f"{base}/cmd/ping", json.dumps({"echo": "acl"}).encode()) == "Success"
        assert wait(lambda: any(t == f"{base}/events" and json.loads(p).get("echo") == "acl"
                                for t, p in host.messages))
        assert host.publish(f"{base}/telemetry", b"host forges") == "Not authorized"   # the host cannot forge
        agent.stop()
        assert wait(lambda: any(t == f"{base}/state" and b'"offline"' in p for t, p in host.messages))
    finally:
        agent.stop()
        host.close()


@pytest.mark.parametrize("user,password", [("dev-a", "wrong"), ("dev-a", ""), ("nobody", "x"), (None, None),
                                           ("edgepack-host", "dev-a's password")])
def test_wrong_credentials_are_refused(guarded, user, password):
    b, creds, _ = guarded
    if password == "dev-a's password":
        password = creds["devices"]["dev-a"]
    c = Client(b.port, user, password)
    try:
        assert c.connack.is_failure and str(c.connack) == "Not authorized"
    finally:
        c.close()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_device_id_lists_become_acls_that_name_only_their_own_topics(text):
    try:
        ids = device_ids(text)
    except EdgepackError as exc:
        assert "device" in str(exc)
        return
    acl = acl_text("f", ids, "host")
    for dev in ids:
        assert ID.fullmatch(dev) and "/" not in dev and "+" not in dev and "#" not in dev
        block = acl.split(f"\nuser {dev}\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert len(block) == 4 and all(line.split()[2].startswith(f"edgepack/v1/f/{dev}/") for line in block)


GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operator.md"


def guide_block(name: str) -> str:
    """The fenced block after ``<!-- test: NAME ... -->`` in docs/operator.md."""
    m = re.search(r"<!-- test: " + re.escape(name) + r"\b[^>]*-->\n```[a-z]*\n(.*?)```", GUIDE.read_text(), re.S)
    assert m, f"docs/operator.md lost its {name} block"
    return m.group(1)


def test_tls_with_client_certificates_as_the_guide_says(guarded, tmp_path):
    """The guide's openssl commands and TLS listener, run as written (broker name and ids replaced): the
    certificate's CN is the user name, so the same ACL holds; no certificate, no connection."""
    certs = tmp_path / "certs"
    certs.mkdir()
    script = guide_block("tls-certs")
    for old, new in (("BROKER=broker.example.org; BROKER_IP=10.0.0.2", "BROKER=localhost; BROKER_IP=127.0.0.1"),
                     ("for id in cam-0001 cam-0002 edgepack-host", "for id in dev-a dev-b edgepack-host")):
        assert old in script
        script = script.replace(old, new)
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=certs, check=True, capture_output=True)
    b, _, conf = guarded
    tls_port = free_port()
    listener = guide_block("tls-listener").replace("listener 8883", f"listener {tls_port} 127.0.0.1")
    listener = listener.replace("/etc/mosquitto/certs/", f"{certs}/")
    tb = Broker(tmp_path, password_file=conf / "passwd", extra=f"acl_file {conf / 'acl'}\n{listener}")
    tb.start()

    def tls_client(ident: str | None) -> mqtt.Client:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"tls-{ident}-{next(_ids)}",
                        protocol=mqtt.MQTTv5)
        c.tls_set(ca_certs=str(certs / "ca.crt"), certfile=ident and str(certs / f"{ident}.crt"),
                  keyfile=ident and str(certs / f"{ident}.key"))
        c.got, c.acks, c.rc = [], {}, None
        c.on_connect = lambda c_, u, f, rc, p=None: setattr(c, "rc", rc)
        c.on_message = lambda c_, u, m: c.got.append(m.payload)
        c.on_publish = lambda c_, u, mid, rc, p=None: c.acks.__setitem__(mid, str(rc))
        return c
    try:
        host = tls_client("edgepack-host")
        host.connect("localhost", tls_port)
        host.loop_start()
        assert wait(lambda: host.rc is not None) and not host.rc.is_failure
        host.subscribe("edgepack/v1/#", qos=1)
        a = tls_client("dev-a")
        a.connect("localhost", tls_port)
        a.loop_start()
        assert wait(lambda: a.rc is not None) and not a.rc.is_failure     # no password: the certificate is the login
        time.sleep(0.2)
        forged = a.publish(f"edgepack/v1/{FLEET}/dev-b/telemetry", b"forged over tls", qos=1)
        own = a.publish(f"edgepack/v1/{FLEET}/dev-a/telemetry", b"own over tls", qos=1)
        assert wait(lambda: forged.mid in a.acks and own.mid in a.acks and b"own over tls" in host.got)
        assert a.acks[forged.mid] == "Not authorized" and b"forged over tls" not in host.got
        anonymous = tls_client(None)                       # the server's certificate is fine, but no client one
        try:
            anonymous.connect("localhost", tls_port)       # TLS 1.3: the broker's refusal comes after the handshake
            anonymous.loop_start()
        except OSError:
            pass
        assert not wait(lambda: anonymous.rc is not None and not anonymous.rc.is_failure, 2)
        assert "peer did not return a certificate" in (tmp_path / "mosquitto.log").read_text()
    finally:
        for c in ("host", "a", "anonymous"):
            client = locals().get(c)
            if client is not None:
                client.loop_stop()
        tb.stop()
