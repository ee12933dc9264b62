"""Every command verb, and every kind of refusal, through a real mosquitto to an Agent on an MqttLink.

The agent serves a stub runtime: commands never touch the model, so no bundle is built here."""
from __future__ import annotations

import time
import uuid

import paho.mqtt.publish as publish
import pytest

from edgepack_runtime.agent import Agent
from edgepack_runtime.agentcmds import COMMANDS
from edgepack_runtime.cmdschema import Arg
from edgepack_runtime.commands import Command, Registry
from edgepack_runtime.link import MqttLink
from edgepack_runtime.outbox import Outbox


class _Bundle:
    manifest = {"model": {"name": "stub", "version": "1"}}
    manifest_bytes = b"{}"


class StubRuntime:
    backend_name, inputs, bundle = "stub", [], _Bundle()


class Device:
    """An agent on its own device id, a subscriber on its topics, and ``send(verb, payload)``."""

    def __init__(self, port: int, tmp_path, subscribe, commands=None, on_command=None):
        self.port, self.dev = port, f"cmd-{uuid.uuid4().hex[:8]}"
        self.sub = subscribe(f"edgepack/v1/lab/{self.dev}/+")     # state, events, telemetry; not our own cmd/*
        self.link = MqttLink(host="127.0.0.1", port=port, device_id=self.dev, fleet="lab",
                             outbox=Outbox(tmp_path / f"{self.dev}.db"), backoff_base=0.05, on_command=on_command)
        self.agent = Agent(StubRuntime(), sink=self.link, telemetry_interval=3600, drift=False, commands=commands)

    def send(self, verb: str, payload: bytes) -> None:
        publish.single(f"edgepack/v1/lab/{self.dev}/cmd/{verb}", payload, qos=1, hostname="127.0.0.1",
                       port=self.port)

    def events(self, n: int, timeout: float = 10.0) -> list[dict]:
        """Wait for ``n`` events and return them (in the order they were published)."""
        assert self.sub.wait_for(lambda: len(self.sub.on("/events")) >= n, timeout), self.sub.on("/events")
        return sorted(self.sub.on("/events"), key=lambda e: e["seq"])[:n]


@pytest.fixture
def device(broker, subscribe, tmp_path):
    made = []

    def make(**kw) -> Device:
        d = Device(broker.port, tmp_path, subscribe, **kw)
        d.agent.start()
        made.append(d)
        assert d.link.connected.wait(5)
        assert d.sub.wait_for(lambda: any(m.get("state") == "online" for m in d.sub.on("/state")))
        time.sleep(0.2)                                   # the link's SUBSCRIBE lands after its birth message
        return d
    yield make
    for d in made:
        d.agent.stop()


def test_ping_with_and_without_echo(device):
    d = device()
    d.send("ping", b'{"echo": {"n": [1, 2.5, "x", null]}}')
    d.send("ping", b"")
    first, second = d.events(2)
    assert first["type"] == "pong" and first["echo"] == {"n": [1, 2.5, "x", None]}
    assert second["type"] == "pong" and second["echo"] is None and second["device"] == d.dev


def test_telemetry_publishes_now(device):
    d = device()
    assert d.sub.on("/telemetry") == []
    d.send("telemetry", b"{}")
    assert d.sub.wait_for(lambda: len(d.sub.on("/telemetry")) == 1)
    tel = d.sub.on("/telemetry")[0]["telemetry"]
    assert tel["backend"] == "stub" and tel["sink"]["connected"] is True
    assert d.sub.on("/events") == []                      # the telemetry message is the answer


def test_config_changes_the_period_and_refuses_bad_values(device):
    d = device()
    d.send("config", b'{"telemetry_interval": 0}')
    d.send("config", b'{"telemetry_interval": 2.5}')
    refused, applied = d.events(2)
    assert refused["type"] == "bad_command" and refused["fields"] == ["telemetry_interval"]
    assert "[0.1, 86400" in refused["error"] and "int 0" in refused["error"], refused
    assert applied == {**applied, "type": "config_applied", "telemetry_interval": 2.5}
    assert d.agent.interval == 2.5


@pytest.mark.parametrize("verb,payload,fields,needle", [
    ("ping", b'{"echo": 1, "n": 2}', ["n"], "unknown field 'n' (known: echo)"),
    ("config", b"{}", ["telemetry_interval"], "missing field 'telemetry_interval'"),
    ("config", b'{"telemetry_interval": "soon"}', ["telemetry_interval"], 'not str "soon"'),
    ("telemetry", b"[]", [], "must be a JSON object"),
    ("ping", b"[" * 30000 + b"]" * 30000, [], "nests deeper than 32"),
    ("ping", b'{"echo": NaN}', [], "NaN"),
    ("ping", b"\xc3\x28", [], "not UTF-8"),
], ids=["unknown-field", "missing-field", "wrong-type", "not-object", "nested-30000", "nan", "not-utf8"])
def test_refusals_are_bad_command_events_and_the_link_stays_up(device, verb, payload, fields, needle):
    d = device()
    d.send(verb, payload)
    d.send("ping", b'{"echo": "after"}')
    refused, pong = d.events(2)
    assert refused["type"] == "bad_command" and refused["verb"] == verb
    assert refused["fields"] == fields and needle in refused["error"]
    assert pong == {**pong, "type": "pong", "echo": "after"}
    assert d.link.counters["bad_commands"] == 1


def test_unknown_verb_lists_the_known_ones(device):
    d = device()
    d.send("reboot", b"{}")
    (event,) = d.events(1)
    assert event["type"] == "unknown_command" and event["verb"] == "reboot"
    assert event["known"] == COMMANDS.verbs and "known commands: " + ", ".join(COMMANDS.verbs) in event["error"]


def test_a_failing_handler_becomes_command_failed_and_the_link_stays_up(device):
    def explode(agent, args):
        raise RecursionError("handler bug")
    table = Registry([*COMMANDS, Command("explode", {"n": Arg("integer")}, explode, "Fails.")])
    d = device(commands=table)
    d.send("explode", b'{"n": 1}')
    d.send("ping", b'{"echo": 7}')
    failed, pong = d.events(2)
    assert failed["type"] == "command_failed" and failed["verb"] == "explode"
    assert failed["error"] == "RecursionError: handler bug"
    assert pong["type"] == "pong" and pong["echo"] == 7 and d.link.connected.is_set()


def test_a_reply_that_cannot_be_sent_is_command_failed(device):
    table = Registry([Command("odd", {}, lambda agent, args: {"type": "odd", "value": object()}, "Bad reply."),
                      *COMMANDS])
    d = device(commands=table)
    d.send("odd", b"")
    d.send("ping", b"")
    failed, pong = d.events(2)
    assert failed["type"] == "command_failed" and "TypeError" in failed["error"] and pong["type"] == "pong"


def test_a_plain_callback_sees_parsed_bodies_and_its_errors_are_reported(broker, subscribe, tmp_path):
    seen = []

    def on_command(verb, body):
        seen.append((verb, body))
        if verb == "boom":
            raise ValueError("not an argument problem: a bug")
    d = Device(broker.port, tmp_path, subscribe, on_command=on_command)
    with d.link:
        assert d.link.connected.wait(5)
        time.sleep(0.2)
        d.send("boom", b'{"a": 1}')
        d.send("fine", b"")
        assert d.sub.wait_for(lambda: len(seen) == 2)
        (event,) = d.events(1)
    assert seen == [("boom", {"a": 1}), ("fine", {})]
    assert event["type"] == "command_failed" and event["error"] == "ValueError: not an argument problem: a bug"
