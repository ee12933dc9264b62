"""The device agent end to end: local HTTP API, back-pressure, micro-batching, cache, telemetry and drift
over a real mosquitto."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.build import build
from edgepack_runtime import Runtime
from edgepack_runtime import wire
from edgepack_runtime.agent import Agent
from edgepack_runtime.agentcli import cmd_agent
from edgepack_runtime.link import MqttLink
from edgepack_runtime.outbox import Outbox
from edgepack_runtime.server import AgentServer

RNG = np.random.default_rng(11)
BATCH = 4


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("agent")
    w = nh.from_array(RNG.standard_normal((4, 8)).astype(np.float32), "W")
    g = h.make_graph([h.make_node("Gemm", ["x", "W"], ["logits"], transB=1), h.make_node("Softmax", ["logits"], ["p"])],
                     "clf", [h.make_tensor_value_info("x", TP.FLOAT, [BATCH, 8])],
                     [h.make_tensor_value_info("p", TP.FLOAT, [BATCH, 4])], [w])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), d / "clf.onnx")
    samples = [{"x": RNG.standard_normal((BATCH, 8)).astype(np.float32)} for _ in range(100)]
    return build(d / "clf.onnx", targets=["cpu"], samples=samples, out=d / "clf.edgepack").path


def _post(port, body, path="/v1/infer"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def served(bundle):
    made = []

    def make(**kw):
        agent = Agent(Runtime.open(bundle), **kw).start()
        server = AgentServer(agent).start()
        made.append((agent, server))
        return agent, server.port
    yield make
    for agent, server in made:
        server.stop()
        agent.stop()


def test_http_inference_matches_the_runtime(bundle, served):
    agent, port = served()
    x = RNG.standard_normal((BATCH, 8)).astype(np.float32)
    want = Runtime.open(bundle).run({"x": x})["p"]
    code, body = _post(port, {"inputs": {"x": wire.encode(x)}})
    assert code == 200 and body["latency_ms"] > 0
    np.testing.assert_allclose(wire.decode("p", body["outputs"]["p"], "float32"), want, rtol=1e-6)
    code, body = _post(port, {"inputs": {"x": x.tolist()}})            # nested lists work too
    assert code == 200
    health = _get(port, "/v1/health")
    assert health["status"] == "ok" and health["backend"] == "litert" and health["model"] == "clf"


@pytest.mark.parametrize("body,needle", [({"inputs": {"x": [[1.0, 2.0]]}}, "shape"),
                                         ({"inputs": {"nope": [1.0]}}, "nope"),
                                         ({"oops": 1}, "inputs"),
                                         ({"inputs": {"x": {"dtype": "float32", "shape": [4, 8], "data": "!!"}}},
                                          "encoding")])
def test_bad_requests_get_400_and_the_agent_keeps_serving(served, body, needle):
    agent, port = served()
    code, resp = _post(port, body)
    assert code == 400 and needle in resp["error"]
    code, _ = _post(port, {"inputs": {"x": np.zeros((BATCH, 8)).tolist()}})
    assert code == 200
    assert agent.telemetry.snapshot(reset=False)["input_errors"] >= (1 if needle in ("shape", "nope") else 0)


def test_full_queue_answers_busy(served):
    agent, port = served(queue_size=1)
    agent.paused.clear()                                   # hold the worker
    x = {"inputs": {"x": np.zeros((BATCH, 8)).tolist()}}
    results = []
    threads = [threading.Thread(target=lambda: results.append(_post(port, x))) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)                                    # first is taken by the worker, second fills the queue
    code, body = _post(port, x)
    assert code == 503 and body["error"] == "busy" and body["retry_after_ms"] > 0
    agent.paused.set()
    for t in threads:
        t.join(10)
    assert sorted(c for c, _ in results) == [200, 200]
    assert agent.telemetry.snapshot(reset=False)["busy_rejections"] == 1


def test_micro_batching_packs_single_samples(bundle, served):
    agent, port = served(max_batch=BATCH, max_wait_ms=300)
    rows = [RNG.standard_normal((1, 8)).astype(np.float32) for _ in range(3)]
    want = Runtime.open(bundle).run({"x": np.concatenate(rows + [np.zeros((1, 8), np.float32)])})["p"]
    results = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, _post(port, {"inputs": {"x": wire.encode(rows[i])}})))
               for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for i in range(3):
        code, body = results[i]
        assert code == 200
        np.testing.assert_allclose(wire.decode("p", body["outputs"]["p"], "float32"), want[i:i + 1], rtol=1e-6)
    assert agent.telemetry.snapshot(reset=False)["calls"] == 1   # one backend call served all three


def test_output_cache_hit_rate(served):
    agent, port = served(cache_size=4)
    x = {"inputs": {"x": np.ones((BATCH, 8)).tolist()}}
    for _ in range(3):
        assert _post(port, x)[0] == 200
    m = _get(port, "/v1/metrics")
    assert m["cache_hit_rate"] == pytest.approx(2 / 3) and m["calls"] == 1


def test_telemetry_and_drift_alert_over_mqtt(bundle, broker, subscribe, tmp_path):
    sub = subscribe("edgepack/v1/lab/cam1/#")
    link = MqttLink(host="127.0.0.1", port=broker.port, device_id="cam1", fleet="lab",
                    outbox=Outbox(tmp_path / "o.db"), backoff_base=0.05)
    with Agent(Runtime.open(bundle), link=link, telemetry_interval=0.3, drift_window=50, drift_every=1) as agent:
        assert link.connected.wait(5)
        for _ in range(50):
            agent.infer({"x": RNG.standard_normal((BATCH, 8)).astype(np.float32)})
        assert sub.wait_for(lambda: len(sub.on("/drift")) >= 1)
        assert sub.on("/drift")[0]["drift"]["alerts"] == []
        for _ in range(50):
            agent.infer({"x": (RNG.standard_normal((BATCH, 8)) * 3 + 2).astype(np.float32)})
        assert sub.wait_for(lambda: any(e.get("type") == "drift_alert" for e in sub.on("/events")))
        assert sub.wait_for(lambda: any(t["telemetry"]["calls"] > 0 for t in sub.on("/telemetry")))
    tel = [t["telemetry"] for t in sub.on("/telemetry") if t["telemetry"]["calls"] > 0][0]
    assert tel["backend"] == "litert" and tel["latency_ms"]["p50"] > 0 and tel["model"] == "clf"
    alert = [e for e in sub.on("/events") if e.get("type") == "drift_alert"][0]
    assert {"tensor": "x", "kind": "inputs"}.items() <= alert["alerts"][0].items()
    seqs = [m["seq"] for m in sub.on("/telemetry") + sub.on("/drift") + sub.on("/events")]
    assert len(set(seqs)) == len(seqs)


def test_agent_command_line_with_a_config_file(bundle, broker, subscribe, tmp_path):
    conf = tmp_path / "agent.toml"
    conf.write_text(f'bundle = "{bundle}"\nbroker = "mqtt://127.0.0.1:{broker.port}"\ndevice_id = "d7"\n'
                    f'fleet = "cli"\nhttp_port = 0\ntelemetry_interval = 0.2\noutbox = "{tmp_path / "o.db"}"\n')
    sub = subscribe("edgepack/v1/cli/d7/#")
    import argparse
    from edgepack_runtime.cli import build_parser
    args = build_parser().parse_args(["agent", "--config", str(conf)])
    stop = threading.Event()
    t = threading.Thread(target=cmd_agent, args=(args, stop))
    t.start()
    try:
        assert sub.wait_for(lambda: any(m.get("state") == "online" for m in sub.on("/state")))
        assert sub.wait_for(lambda: len(sub.on("/telemetry")) >= 1)
    finally:
        stop.set()
        t.join(10)
    assert sub.wait_for(lambda: sub.on("/state")[-1]["state"] == "offline")
    assert isinstance(args, argparse.Namespace)


def test_agent_config_errors_are_clear(tmp_path):
    from edgepack_runtime.cli import main
    conf = tmp_path / "bad.toml"
    conf.write_text('bundle = "x"\nbrokr = "mqtt://h:1"\n')
    assert main(["agent", "--config", str(conf)]) == 1
    assert main(["agent", "--bundle", "b", "--broker", "mqtt://127.0.0.1:1"]) == 1


def test_drift_sampling_adapts_to_the_budget(bundle):
    agent = Agent(Runtime.open(bundle), drift_budget=0.01)
    x = {"x": np.zeros((BATCH, 8), np.float32)}
    for _ in range(200):
        agent.run(x)
    assert agent._observe_every > 1            # a microsecond model cannot afford a histogram per call
    fixed = Agent(Runtime.open(bundle), drift_every=1)
    for _ in range(10):
        fixed.run(x)
    assert fixed._observe_every == 1 and fixed.drift._calls == 10


def test_full_outbox_disk_and_no_broker_keep_inference_running(bundle, tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]                      # nothing listens here
    link = MqttLink(host="127.0.0.1", port=dead_port, device_id="d", fleet="f",
                    outbox=Outbox(tmp_path / "o.db", max_db_pages=4), backoff_base=0.05, backoff_cap=0.2)
    agent = Agent(Runtime.open(bundle), link=link, telemetry_interval=0.05).start()
    server = AgentServer(agent).start()
    try:
        for _ in range(30):
            assert _post(server.port, {"inputs": {"x": np.zeros((BATCH, 8)).tolist()}})[0] == 200
            time.sleep(0.02)
        health = _get(server.port, "/v1/health")
        assert health["mqtt_connected"] is False
        assert health["outbox"]["write_errors"] > 0 and "full" in health["outbox"]["last_error"]
        assert link.last_error and "cannot reach broker" in link.last_error
    finally:
        server.stop()
        agent.stop()
