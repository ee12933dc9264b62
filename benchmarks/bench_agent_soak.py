"""Device agent soak (issue #11): inference over HTTP, connection abuse and MQTT command floods while the broker
is restarted again and again; at the end every sequence number the device handed out has reached a monitor
on the broker side, and every agent thread is alive.

One real mosquitto on loopback (``tests/agent/conftest.Broker``), one agent serving a tiny ONNX bundle with a
drift baseline (worker, telemetry, drift and MQTT threads all busy), and, for ``--minutes``:

- ``--clients`` threads POSTing ``/v1/infer`` in a loop (some inputs hold NaN: counted, still served);
- an abuser opening ``--idle`` idle TCP connections to the API at a time, sending them half a request or
  garbage, and dropping them;
- a flooder publishing ``cmd/ping`` as fast as the broker takes them (the device's command rate limit);
- the broker stopped (SIGTERM) and restarted every ``--restart-every`` seconds, down ``--down`` seconds.

Then the load stops, the outbox drains, the agent stops (last telemetry, offline), and the monitor's
persistent QoS 1 session is checked for every ``seq`` from 1 to the last one the outbox assigned.

    python benchmarks/bench_agent_soak.py --minutes 5          # figures for benchmarks/RESULTS.md
    python benchmarks/bench_agent_soak.py --minutes 0.3 --json  # what tests/agent/test_soak.py runs
"""
from __future__ import annotations

import argparse
import json
import random
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgepack_runtime import Runtime, wire  # noqa: E402
from edgepack_runtime.agent import Agent  # noqa: E402
from edgepack_runtime.bundle import write_bundle  # noqa: E402
from edgepack_runtime.drift import compute_baseline  # noqa: E402
from edgepack_runtime.link import MqttLink  # noqa: E402
from edgepack_runtime.metrics import rss_bytes  # noqa: E402
from edgepack_runtime.outbox import Outbox  # noqa: E402
from edgepack_runtime.server import AgentServer  # noqa: E402
from tests.agent.conftest import Broker, Subscriber  # noqa: E402

SHAPE = [1, 16]


def tiny_bundle(path: Path) -> Path:
    """y = x * 2 + 1 as an ONNX target, with a drift baseline from 200 normal samples."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    two, one = (numpy_helper.from_array(np.array([v], np.float32), n) for v, n in ((2.0, "two"), (1.0, "one")))
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Add", ["t", "one"], ["y"])],
                              "soak", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)], [two, one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(200)]
    baseline = compute_baseline([{"x": x} for x in xs], [{"y": x * 2 + 1} for x in xs])
    tensor = lambda n: {"name": n, "shape": SHAPE, "dtype": "float32", "layout": None}  # noqa: E731
    manifest = {"model": {"name": "soak", "version": "1", "source_sha256": "0" * 64, "opsets": {"": 17}},
                "created": "2025-01-01T00:00:00Z", "tools": {"edgepack": "0"}, "inputs": [tensor("x")],
                "outputs": [tensor("y")], "samples": [], "drift_baseline": "drift/baseline.json",
                "targets": [{"name": "ref", "format": "onnx", "file": "models/ref/model.onnx", "precision": "fp32",
                             "io": {"inputs": [{"name": "x", "perm": None}], "outputs": [{"name": "y", "perm": None}]},
                             "parity": {}, "info": {}}]}
    return write_bundle(path, manifest, {"models/ref/model.onnx": model.SerializeToString(),
                                         "drift/baseline.json": json.dumps(baseline).encode()})


def _post(port: int, body: bytes) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/infer", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return -1                       # refused or reset: counted, not fatal


def _client(port: int, stop: threading.Event, codes: dict, lock: threading.Lock, seed: int) -> None:
    rng = np.random.default_rng(seed)
    while not stop.is_set():
        x = rng.standard_normal(SHAPE).astype(np.float32)
        if rng.random() < 0.05:
            x[0, 0] = np.nan
        code = _post(port, json.dumps({"inputs": {"x": wire.encode(x)}}).encode())
        with lock:
            codes[code] = codes.get(code, 0) + 1


def _abuser(port: int, stop: threading.Event, idle: int, counts: dict) -> None:
    rng = random.Random(1)
    while not stop.is_set():
        held = []
        for _ in range(idle):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
                s.sendall(rng.choice([b"", b"POST /v1/infer HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
                                      b"GET /v1/he", bytes(rng.randrange(256) for _ in range(64))]))
                held.append(s)
            except OSError:
                counts["refused"] += 1
        counts["opened"] += len(held)
        stop.wait(0.5)
        for s in held:
            s.close()


def _flooder(port: int, topic: str, stop: threading.Event, counts: dict) -> None:
    """``cmd/ping`` at up to ~1000/s from a fresh client every 2 s (the broker comes and goes)."""
    import paho.mqtt.client as mqtt
    while not stop.is_set():
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-flood-{uuid.uuid4().hex[:6]}")
        c.max_queued_messages_set(100)
        try:
            c.connect("127.0.0.1", port)
        except OSError:
            stop.wait(0.2)              # the broker is down
            continue
        c.loop_start()
        deadline = time.monotonic() + 2.0
        while not stop.is_set() and time.monotonic() < deadline:
            if c.publish(topic, b'{"echo": 1}', qos=1).rc == 0:
                counts["sent"] += 1
            time.sleep(0.001)
        c.disconnect()
        c.loop_stop()


def soak(seconds: float, *, restart_every: float = 5.0, down: float = 1.0, clients: int = 2, idle: int = 30,
         flood: bool = True, workdir: Path | None = None) -> dict:
    """Run the scenario for ``seconds``; return the figures (see the module docstring)."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="edgepack-soak-"))
    bundle = tiny_bundle(tmp / "soak.edgepack")
    broker = Broker(tmp)
    broker.start()
    dev = f"soak-{uuid.uuid4().hex[:6]}"
    monitor = Subscriber(broker.port, f"edgepack/v1/soak/{dev}/+", client_id=f"soak-monitor-{dev}")
    outbox = Outbox(tmp / "outbox.db", max_messages=1_000_000, max_bytes=1 << 30)
    link = MqttLink(host="127.0.0.1", port=broker.port, device_id=dev, fleet="soak", outbox=outbox,
                    backoff_base=0.1, backoff_cap=1.0)
    agent = Agent(Runtime.open(bundle), sink=link, telemetry_interval=0.2, drift_window=50, drift_every=1).start()
    server = AgentServer(agent).start()
    link.connected.wait(10)
    stop, lock = threading.Event(), threading.Lock()
    codes: dict = {}
    abuse = {"opened": 0, "refused": 0}
    flooded = {"sent": 0}
    workers = [threading.Thread(target=_client, args=(server.port, stop, codes, lock, i)) for i in range(clients)]
    workers.append(threading.Thread(target=_abuser, args=(server.port, stop, idle, abuse)))
    if flood:
        workers.append(threading.Thread(target=_flooder, args=(broker.port, f"edgepack/v1/soak/{dev}/cmd/ping",
                                                                stop, flooded)))
    t0 = time.monotonic()
    for w in workers:
        w.start()
    restarts, peak_outbox, peak_rss = 0, 0, 0
    next_restart = t0 + restart_every
    while time.monotonic() - t0 < seconds:
        time.sleep(0.1)
        peak_outbox = max(peak_outbox, len(outbox))
        peak_rss = max(peak_rss, rss_bytes() or 0)
        if time.monotonic() >= next_restart and time.monotonic() - t0 + down < seconds:
            broker.stop()
            time.sleep(down)
            peak_outbox = max(peak_outbox, len(outbox))
            broker.start()
            restarts += 1
            next_restart = time.monotonic() + restart_every
    stop.set()
    for w in workers:
        w.join(30)
    elapsed = time.monotonic() - t0
    health = agent.health()
    drained = monitor.wait_for(lambda: len(outbox) == 0 and link.connected.is_set(), timeout=60)
    server.stop()
    agent.stop()                       # last telemetry period, flush, offline
    last = outbox.stats()["seq"]
    expected = set(range(1, last + 1))
    received = lambda: {m["seq"] for kind in ("/telemetry", "/drift", "/events") for m in monitor.on(kind)}  # noqa: E731
    complete = monitor.wait_for(lambda: received() >= expected, timeout=60)
    seqs = [m["seq"] for kind in ("/telemetry", "/drift", "/events") for m in monitor.on(kind)]
    monitor.close()
    broker.stop()
    thread_problems = [p for p in health["problems"] if p.startswith("thread ")]
    return {"seconds": round(elapsed, 1), "broker_restarts": restarts, "requests": dict(sorted(codes.items())),
            "idle_connections_opened": abuse["opened"], "connections_refused": abuse["refused"],
            "commands_flooded": flooded["sent"], "commands_rate_limited": link.counters["rate_limited"],
            "published": last, "received_unique": len(set(seqs)), "duplicates": len(seqs) - len(set(seqs)),
            "missing": len(expected - set(seqs)), "complete": complete, "outbox_drained": drained,
            "outbox_peak": peak_outbox, "peak_rss_mb": round(peak_rss / 2 ** 20, 1),
            "threads": {n: {"running": t["running"], "restarts": t["restarts"]} for n, t in health["threads"].items()},
            "thread_problems": thread_problems, "reconnects": link.counters["reconnects"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--restart-every", type=float, default=20.0, help="seconds between broker restarts")
    p.add_argument("--down", type=float, default=2.0, help="seconds the broker stays down")
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--idle", type=int, default=30, help="idle connections the abuser holds at a time")
    p.add_argument("--no-flood", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    figures = soak(a.minutes * 60, restart_every=a.restart_every, down=a.down, clients=a.clients, idle=a.idle,
                   flood=not a.no_flood)
    print(json.dumps(figures, indent=None if a.json else 1))
    ok = figures["complete"] and not figures["missing"] and not figures["thread_problems"] and \
        all(t["running"] for t in figures["threads"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
