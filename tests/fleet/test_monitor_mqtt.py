"""The Monitor on a real mosquitto: real agents (runtime Agent + MqttLink, a real bundle built by edgepack) seen
online, with model, latency and drift, offline by goodbye and by last will; the history read back by
``edgepack fleet status|history|drift``; bad input from a raw client counted, never fatal; two monitors
splitting the load through a shared subscription into one PostgreSQL history; a broker restart survived."""
from __future__ import annotations

import json
import time

import numpy as np
import onnx
import paho.mqtt.client as mqtt
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh
from typer.testing import CliRunner

from edgepack.build import build
from edgepack.cli.main import app
from edgepack.fleet.gate import GateSettings
from edgepack.fleet.history import open_history
from edgepack.fleet.ingest import Monitor
from edgepack_runtime import Runtime
from edgepack_runtime.agent import Agent
from edgepack_runtime.link import MqttLink
from edgepack_runtime.outbox import Outbox

from .envelopes import payload, state_payload, telemetry_body, topic

RNG = np.random.default_rng(5)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("fleetbundle")
    w = nh.from_array(RNG.standard_normal((4, 8)).astype(np.float32), "W")
    g = h.make_graph([h.make_node("Gemm", ["x", "W"], ["logits"], transB=1), h.make_node("Softmax", ["logits"], ["p"])],
                     "clf", [h.make_tensor_value_info("x", TP.FLOAT, [1, 8])],
                     [h.make_tensor_value_info("p", TP.FLOAT, [1, 4])], [w])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), d / "clf.onnx")
    samples = [{"x": RNG.standard_normal((1, 8)).astype(np.float32)} for _ in range(200)]
    return build(d / "clf.onnx", targets=["cpu"], samples=samples, out=d / "clf.edgepack", version="1.2").path


def wait(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def raw_client(port: int, **will) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if will:
        c.will_set(**will)
    c.connect("127.0.0.1", port, keepalive=5)
    c.loop_start()
    return c


def cli_json(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def rows_by_device(mon) -> dict:
    return {r["device"]: r for r in mon.state.snapshot()["devices"]}


def test_real_agents_live_and_in_history(broker, bundle, tmp_path):
    url = f"sqlite:///{tmp_path}/fleet.db"
    mon = Monitor(f"mqtt://127.0.0.1:{broker.port}", history=url, flush_every=0.05).start()
    assert mon.wait_connected(10)
    agents = []
    for i in range(3):
        link = MqttLink(host="127.0.0.1", port=broker.port, device_id=f"cam{i}", fleet="lab",
                        outbox=Outbox(tmp_path / f"o{i}.db"))
        agents.append(Agent(Runtime.open(bundle), sink=link, telemetry_interval=0.3, drift_window=50,
                            drift_every=1, power_watts=5.0, cost_per_hour=0.36).start())
    try:
        for k in range(60):
            for i, agent in enumerate(agents):
                x = RNG.standard_normal((1, 8)).astype(np.float32) + (4.0 if i == 2 else 0.0)   # cam2 drifts
                agent.run({"x": x})
        assert wait(lambda: len(rows_by_device(mon)) == 3 and all(
            r["online"] and r["calls"] and r["drift_psi"] is not None for r in rows_by_device(mon).values()))
        rows = rows_by_device(mon)
        assert {(r["fleet"], r["model"], r["version"], r["backend"]) for r in rows.values()} == \
            {("lab", "clf", "1.2", agents[0].rt.backend_name)}
        assert all(r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"] and r["lost"] == 0 for r in rows.values())
        assert rows["cam2"]["drift_alerts"] > 0 and rows["cam0"]["drift_alerts"] == 0
        assert all(r["cost_per_1k"] > 0 and r["energy_j_per_1k"] > 0 for r in rows.values())   # the agent's own
        assert mon.state.series("cam0", "p95_ms")
    finally:
        agents[0].stop()                        # a goodbye: the retained offline
    assert wait(lambda: rows_by_device(mon)["cam0"]["online"] is False)
    for agent in agents[1:]:
        agent.stop()
    mon.stop()
    assert mon.stats()["history"]["dropped"] == 0 and mon.stats()["rejected"] == dict.fromkeys(
        mon.stats()["rejected"], 0)

    status = {r["device"]: r for r in cli_json("fleet", "status", "--history", url)["devices"]}
    assert status["cam0"]["online"] is False and status["cam1"]["online"] is False
    assert status["cam2"]["model"] == "clf" and status["cam2"]["drift_alerts"] > 0
    series = cli_json("fleet", "history", "cam1", "--history", url, "--metric", "p50_ms")["points"]
    assert len(series) >= 1 and all(v > 0 for _, v in series)
    cost = cli_json("fleet", "history", "cam1", "--history", url, "--metric", "cost_per_1k")["points"]
    assert cost and all(v > 0 for _, v in cost) and status["cam1"]["cost_per_1k"] == cost[-1][1]
    report = cli_json("fleet", "drift", "--history", url, "--bundle", str(bundle))
    assert report["judged"] and report["model"] == "clf" and report["devices"] == 3 and not report["skipped"]
    assert any(a["tensor"] == "x" for a in report["alerts"])     # a third of the fleet shifted by 4 sigma
    alerted = {d["device"] for d in report["device_alerts"] if d["alerts"]}
    assert alerted == {"cam2"}
    calm = cli_json("fleet", "drift", "--history", url, "--bundle", str(bundle), "--fleet", "lab", "--model", "clf")
    assert calm["devices"] == 3


def test_a_vanished_device_goes_offline_by_its_will(broker):
    mon = Monitor(f"mqtt://127.0.0.1:{broker.port}").start()
    assert mon.wait_connected(10)
    c = raw_client(broker.port, topic=topic("ghost", "state"), payload=state_payload("ghost", "offline"),
                   qos=1, retain=True)
    c.publish(topic("ghost", "state"), state_payload("ghost"), qos=1, retain=True).wait_for_publish(5)
    assert wait(lambda: rows_by_device(mon).get("ghost", {}).get("online") is True)
    c.loop_stop()
    c.socket().close()                           # no DISCONNECT: the broker sends the will
    assert wait(lambda: rows_by_device(mon)["ghost"]["online"] is False)
    late = Monitor(f"mqtt://127.0.0.1:{broker.port}").start()   # a monitor started later: the retained will
    assert late.wait_connected(10) and wait(lambda: rows_by_device(late).get("ghost", {}).get("online") is False)
    late.stop()
    mon.stop()


def test_bad_input_is_counted_and_the_monitor_goes_on(broker):
    mon = Monitor(f"mqtt://127.0.0.1:{broker.port}", fleet="bad", gate=GateSettings(rate=5, burst=50)).start()
    assert mon.wait_connected(10)
    c = raw_client(broker.port)
    now = time.time()
    sends = [(topic("a", "telemetry", "bad"), payload("a", {"telemetry": {"calls": "many"}}, fleet="bad")),   # schema
             (topic("a", "telemetry", "bad"), payload("a", telemetry_body(), fleet="bad", schema=7)),         # schema
             (topic("a", "telemetry", "bad"), payload("a", telemetry_body(), fleet="bad", ts=now + 3600)),    # future
             (topic("a", "telemetry", "bad"), payload("b", telemetry_body(), fleet="bad")),                   # identity
             (topic("a", "firmware", "bad"), b"{}"),                                                          # kind
             (topic("a", "telemetry", "bad"), b"\x00\x01garbage")]                                            # json
    for t, raw in sends:
        c.publish(t, raw, qos=1)
    for s in range(1, 301):                                                                  # a flood from one
        c.publish(topic("loud", "telemetry", "bad"), payload("loud", telemetry_body(), seq=s, fleet="bad"), qos=1)
    c.publish(topic("newbie", "telemetry", "bad"), payload("newbie", telemetry_body(p95=7.5), fleet="bad"),
              qos=1).wait_for_publish(5)
    assert wait(lambda: mon.stats()["received"] == len(sends) + 301)
    stats = mon.stats()
    r = stats["rejected"]
    assert (r["schema"], r["future_ts"], r["identity"], r["unknown_kind"], r["not_json"]) == (2, 1, 1, 1, 1)
    assert 50 <= stats["accepted"] - 1 <= 60 and r["flood"] == 300 - (stats["accepted"] - 1)
    rows = rows_by_device(mon)
    assert set(rows) == {"loud", "newbie"}                  # nothing from the refused messages, no 'b'
    assert rows["newbie"]["online"] is None and rows["newbie"]["p95_ms"] == 7.5   # first contact: state unknown
    assert {x["reason"] for x in stats["recent_rejected"]} >= {"flood"}
    c.disconnect()
    c.loop_stop()
    mon.stop()


def test_two_monitors_share_the_load_into_one_postgresql_history(broker, pg_url):
    mons = [Monitor(f"mqtt://127.0.0.1:{broker.port}", history=pg_url, share_group="ingest", fleet="shared",
                    flush_every=0.05).start() for _ in range(2)]
    assert all(m.wait_connected(10) for m in mons)
    c = raw_client(broker.port)
    for d in range(20):
        c.publish(topic(f"s{d}", "state", "shared"), state_payload(f"s{d}", fleet="shared"), qos=1, retain=True)
        for s in range(1, 11):
            c.publish(topic(f"s{d}", "telemetry", "shared"),
                      payload(f"s{d}", telemetry_body(p95=float(s)), seq=s, fleet="shared"), qos=1)
    c.publish(topic("s0", "events", "shared"), payload("s0", {"type": "x"}, seq=11, fleet="shared"),
              qos=1).wait_for_publish(5)
    telemetry = lambda m: sum(r["messages"] - 1 for r in m.state.snapshot()["devices"])   # noqa: E731  (minus state)
    assert wait(lambda: sum(telemetry(m) for m in mons) == 201)
    assert all(telemetry(m) > 20 for m in mons)                 # both took a share
    assert all(len(m.state.snapshot()["devices"]) == 20 and all(r["online"] for r in m.state.snapshot()["devices"])
               for m in mons)                                   # both know every device's state
    for m in mons:
        m.stop()
    h = open_history(pg_url)
    rows = h.status(fleet="shared")
    assert len(rows) == 20 and sum(r["messages"] for r in rows) == 20 + 201 and all(r["lost"] == 0 for r in rows)
    assert all(r["p95_ms"] == 10.0 for r in rows) and len(h.history("s3", "p95_ms")) >= 1
    h.close()
    c.disconnect()
    c.loop_stop()


def test_the_monitor_reconnects_after_a_broker_restart(broker):
    mon = Monitor(f"mqtt://127.0.0.1:{broker.port}", fleet="rs").start()
    assert mon.wait_connected(10)
    broker.stop()
    assert wait(lambda: not mon.stats()["connected"])
    broker.start()
    assert mon.wait_connected(15)
    c = raw_client(broker.port)
    c.publish(topic("r1", "telemetry", "rs"), payload("r1", telemetry_body(), fleet="rs"), qos=1).wait_for_publish(5)
    assert wait(lambda: "r1" in rows_by_device(mon))
    assert mon.stats()["connections"] >= 2
    c.disconnect()
    c.loop_stop()
    mon.stop()
