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
    post = lambda i: results.__setitem__(i, _post(port, {"inputs": {"x": wire.encode(rows[i])}}))  # noqa: E731
    threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
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
    with Agent(Runtime.open(bundle), sink=link, telemetry_interval=0.3, drift_window=50, drift_every=1) as agent:
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
    assert tel["latency_ms"]["p50"] <= tel["latency_ms"]["p95"] <= tel["latency_ms"]["p99"]
    assert tel["rss_bytes"] > 10 ** 6 and tel["throughput_per_s"] > 0 and len(tel["bundle_sha256"]) == 64
    assert tel["model_version"] and tel["errors"] == {} and tel["input_errors"] == 0
    assert tel["sink"]["connected"] is True and tel["sink"]["outbox"]["policy"] == "drop-oldest"
    drift = sub.on("/drift")[0]["drift"]
    assert drift["tensors"]["x"]["n"] == 50 * BATCH * 8 and drift["tensors"]["x"]["kind"] == "inputs"
    assert sum(drift["tensors"]["p"]["class_counts"]) == 50 * BATCH          # classifier output: class mix
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
    agent = Agent(Runtime.open(bundle), sink=link, telemetry_interval=0.05).start()
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


def test_micro_batch_drift_sees_the_real_rows_not_the_padding(bundle):
    agent = Agent(Runtime.open(bundle), max_batch=BATCH, max_wait_ms=500, drift_every=1, cache_size=8)
    agent.paused.clear()                                      # queue three single-row requests, then release
    agent.start()
    try:
        rows = [np.full((1, 8), 5.0 + i, np.float32) for i in range(3)]   # far above the baseline's values
        results = [None] * 3
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, agent.infer({"x": rows[i]})))
                   for i in range(3)]
        for t in threads:
            t.start()
        while agent.requests.qsize() < 2:                     # the worker holds the first one
            time.sleep(0.01)
        agent.paused.set()
        for t in threads:
            t.join(10)
        x = agent.drift.summary(reset=False)["tensors"]["x"]
        assert x["n"] == 3 * 8                                # three rows observed, the zero padding is not
        assert x["counts"][-1] == 3 * 8                       # all in the top bin (5.0 and above)
        assert agent.run({"x": rows[1]}) is not None and agent.telemetry.snapshot()["cache_hit_rate"] > 0
        assert all(r["p"].shape == (1, 4) for r in results)
    finally:
        agent.stop()


@pytest.fixture(scope="module")
def dynamic_bundle(tmp_path_factory):
    """A bundle written directly (ONNX target, batch dimension -1) with its drift baseline member."""
    from edgepack_runtime.bundle import write_bundle
    from edgepack_runtime.drift import compute_baseline
    w = RNG.standard_normal((3, 8)).astype(np.float32)
    g = h.make_graph([h.make_node("Gemm", ["x", "W"], ["y"], transB=1)], "dyn",
                     [h.make_tensor_value_info("x", TP.FLOAT, ["N", 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, ["N", 3])], [nh.from_array(w, "W")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    xs = [{"x": RNG.standard_normal((1, 8)).astype(np.float32)} for _ in range(300)]
    base = compute_baseline(xs, [{"y": x["x"] @ w.T} for x in xs])
    spec = lambda n, k: {"name": n, "shape": [-1, k], "dtype": "float32", "layout": None}  # noqa: E731
    manifest = {"model": {"name": "dyn", "version": "2", "source_sha256": "0" * 64, "opsets": {"": 17}},
                "created": "2026-01-01T00:00:00Z", "tools": {}, "inputs": [spec("x", 8)], "outputs": [spec("y", 3)],
                "targets": [{"name": "ref", "format": "onnx", "file": "models/ref/model.onnx", "precision": "fp32",
                             "io": {"inputs": [{"name": "x", "perm": None}], "outputs": [{"name": "y", "perm": None}]},
                             "parity": {}, "info": {}}],
                "samples": [], "drift_baseline": "drift/baseline.json"}
    files = {"models/ref/model.onnx": m.SerializeToString(), "drift/baseline.json": json.dumps(base).encode()}
    return write_bundle(tmp_path_factory.mktemp("dyn") / "dyn.edgepack", manifest, files), w


def test_dynamic_batch_dimension_is_packed_without_padding(dynamic_bundle):
    path, w = dynamic_bundle
    agent = Agent(Runtime.open(path, backend="onnxruntime"), max_batch=8, max_wait_ms=500, drift_every=1)
    agent.paused.clear()
    agent.start()
    try:
        rows = [RNG.standard_normal((1, 8)).astype(np.float32) for _ in range(5)]
        results = [None] * 5
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, agent.infer({"x": rows[i]})))
                   for i in range(5)]
        for t in threads:
            t.start()
        while agent.requests.qsize() < 4:
            time.sleep(0.01)
        agent.paused.set()
        for t in threads:
            t.join(10)
        for r, x in zip(results, rows):
            np.testing.assert_allclose(r["y"], x @ w.T, rtol=1e-5, atol=1e-6)
        snap = agent.telemetry.snapshot()
        assert snap["calls"] == 1 and snap["requests"] == 5 and snap["model_version"] == "2"
        assert agent.drift.summary()["tensors"]["x"]["n"] == 5 * 8
    finally:
        agent.stop()


def test_commands_ping_config_and_bad_arguments(bundle, broker, subscribe, tmp_path):
    import paho.mqtt.publish as publish
    sub = subscribe("edgepack/v1/lab/cmd1/events")
    link = MqttLink(host="127.0.0.1", port=broker.port, device_id="cmd1", fleet="lab",
                    outbox=Outbox(tmp_path / "o.db"), backoff_base=0.05)
    with Agent(Runtime.open(bundle), sink=link, telemetry_interval=60) as agent:
        assert link.connected.wait(5)
        time.sleep(0.2)
        send = lambda verb, body: publish.single(f"edgepack/v1/lab/cmd1/cmd/{verb}", body, qos=1,  # noqa: E731
                                                 hostname="127.0.0.1", port=broker.port)
        send("ping", b'{"echo": 42}')
        send("config", b'{"telemetry_interval": "soon"}')
        send("config", b'{"telemetry_interval": 0.5}')
        send("reboot", b"{}")
        types = lambda: [e["type"] for e in sub.on("events")]  # noqa: E731
        assert sub.wait_for(lambda: types() == ["pong", "bad_command", "config_applied", "unknown_command"])
        assert sub.on("events")[0]["echo"] == 42 and "telemetry_interval" in sub.on("events")[1]["error"]
        assert agent.interval == 0.5


def test_refused_credentials_agent_keeps_serving_and_says_why(bundle, tmp_path, mosquitto_bin):
    import subprocess

    from .conftest import Broker
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "edge", "right"], check=True)
    b = Broker(tmp_path, password_file=pw)
    b.start()
    link = MqttLink(host="127.0.0.1", port=b.port, device_id="d", fleet="f", outbox=Outbox(tmp_path / "o.db"),
                    username="edge", password="wrong", backoff_base=0.05, backoff_cap=0.2)
    agent = Agent(Runtime.open(bundle), sink=link, telemetry_interval=0.1).start()
    server = AgentServer(agent).start()
    try:
        for _ in range(5):
            assert _post(server.port, {"inputs": {"x": np.zeros((BATCH, 8)).tolist()}})[0] == 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (_get(server.port, "/v1/health")["problems"]
                                                   and _get(server.port, "/v1/health")["outbox"]["queued"]):
            time.sleep(0.05)
        health = _get(server.port, "/v1/health")
        assert health["status"] == "degraded" and health["mqtt_connected"] is False
        assert any("refused" in p and "authorized" in p.lower() for p in health["problems"])
        assert health["outbox"]["queued"] >= 1                    # telemetry waits for a broker that takes it
    finally:
        server.stop()
        agent.stop()
        b.stop()


def test_http_edge_cases(served):
    import http.client
    agent, port = served()

    def raw(method, path, body=b"", headers=None):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    assert raw("GET", "/v1/nope")[0] == 404
    assert raw("POST", "/v1/infer", b"{", {"Content-Length": "1"})[0] == 400             # bad JSON
    code, body = raw("POST", "/v1/infer", b"", {"Content-Length": str(65 * 2 ** 20)})    # announced, not sent
    assert code == 413 and "exceeds" in body["error"]
    code, body = raw("POST", "/v1/infer", b"{}", {"Content-Length": "-5"})
    assert code == 400 and "Content-Length" in body["error"]
    x = wire.encode(np.zeros((BATCH, 8), np.float64))                                     # wrong dtype
    code, body = raw("POST", "/v1/infer", json.dumps({"inputs": {"x": x}}).encode())
    assert code == 400 and "float32" in body["error"]
    assert raw("POST", "/v1/infer", json.dumps({"inputs": {"x": np.ones((BATCH, 8)).tolist()}}).encode())[0] == 200
    health = raw("GET", "/v1/health")[1]
    assert health["status"] == "ok" and health["problems"] == [] and health["queue"]["max"] == 64


def test_json_lines_sink_without_a_broker(bundle, tmp_path):
    from edgepack_runtime.sink import JsonLinesSink
    sink = JsonLinesSink(tmp_path / "t.jsonl", device_id="bench")
    with Agent(Runtime.open(bundle), sink=sink, telemetry_interval=3600, drift_every=1, drift_window=10) as agent:
        for _ in range(10):
            agent.infer({"x": RNG.standard_normal((BATCH, 8)).astype(np.float32)})
        deadline = time.monotonic() + 5
        while agent.drift._calls and time.monotonic() < deadline:      # the reporter closes the window
            time.sleep(0.02)
    lines = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [m["kind"] for m in lines] == ["drift", "telemetry"]       # window of 10, then the final period
    assert [m["seq"] for m in lines] == [1, 2] and lines[1]["telemetry"]["calls"] == 10
    assert lines[0]["drift"]["tensors"]["x"]["n"] == 10 * BATCH * 8 and lines[0]["device"] == "bench"


def test_synthetic_baseline_reports_but_does_not_alert(tmp_path):
    d = tmp_path
    w = nh.from_array(RNG.standard_normal((4, 8)).astype(np.float32), "W")
    g = h.make_graph([h.make_node("Gemm", ["x", "W"], ["y"], transB=1)], "syn",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, 4])], [w])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), d / "syn.onnx")
    path = build(d / "syn.onnx", targets=["cpu"], out=d / "syn.edgepack").path     # no samples: synthetic data
    agent = Agent(Runtime.open(path), drift_every=1, drift_window=100)
    for _ in range(100):
        agent.run({"x": (RNG.standard_normal((1, 8)) * 10 + 50).astype(np.float32)})   # wildly off
    summary = agent.publish_drift()
    assert summary["alerts"] == [] and "synthetic" in summary["note"]
    assert summary["tensors"]["x"]["psi"] > 1.0                     # the distance is still reported
    assert any("calibration" in p for p in agent.health()["problems"])


def test_agent_config_type_errors_are_clear(tmp_path, capsys):
    from edgepack_runtime.cli import main
    conf = tmp_path / "bad.toml"
    conf.write_text('bundle = "x"\nhttp_port = "eighty"\n')
    assert main(["agent", "--config", str(conf)]) == 1
    assert "http_port" in capsys.readouterr().err
    conf.write_text('bundle = "x"\noutbox_policy = "keep-all"\n')
    assert main(["agent", "--config", str(conf)]) == 1
    assert "drop-oldest" in capsys.readouterr().err


def test_the_agent_works_without_paho(bundle, tmp_path):
    import subprocess
    import sys
    code = f"""
import sys
sys.modules["paho"] = None                      # as if paho-mqtt were not installed
from edgepack_runtime import Runtime
from edgepack_runtime import agent, agentcli, drift, link, outbox, server, sink
from edgepack_runtime.errors import EdgepackError
import numpy as np
with agent.Agent(Runtime.open({str(bundle)!r}), sink=sink.JsonLinesSink({str(tmp_path / 't.jsonl')!r})) as a:
    print(a.infer({{"x": np.zeros((4, 8), np.float32)}})["p"].shape)
try:
    link.MqttLink(host="127.0.0.1", port=1, device_id="d", outbox=outbox.Outbox(":memory:"))
except EdgepackError as exc:
    print(exc)
print(sorted(m for m in sys.modules if m.startswith("paho") and sys.modules[m] is not None))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "(4, 4)" and "edgepack-runtime[mqtt]" in lines[1] and lines[2] == "[]"
