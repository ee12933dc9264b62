"""The largest simulated fleet one machine holds with one broker (issue #13, item 5).

One real mosquitto on loopback; `edgepack fleet simulate`'s Simulator runs N real agents (a small classifier
built by edgepack, 1 request/s per device, telemetry every 2 s) for a few seconds per step, N = 10, 50, 100,
200, 400, ... A bare paho subscriber (the monitor's seat) timestamps every telemetry message. A step holds
when, over its measured window, >= 95% of the expected telemetry arrived (less one period per device: each
starts at its own phase), its p95 delivery lag (arrival
minus the message's own ts) is <= 1 s and the feeders' p95 lateness is <= 250 ms; the first step that fails
ends the run (or the time budget does). Baseline, same run: the largest N again as N bare paho clients that
only publish the same telemetry message on the same period; the ratio is CPU per device, real agent / bare.

    python benchmarks/bench_fleet_sim.py [--steps 10,50,100,200,400,800] [--seconds 20] [--budget 420]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.agent.conftest import Broker  # noqa: E402

INTERVAL, RATE, WARMUP = 2.0, 1.0, 4.0


def build_bundle(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper as nh

    from edgepack.build import build
    rng = np.random.default_rng(0)
    w = nh.from_array(rng.standard_normal((10, 64)).astype(np.float32), "W")
    g = h.make_graph([h.make_node("Gemm", ["x", "W"], ["l"], transB=1), h.make_node("Softmax", ["l"], ["p"])],
                     "clf", [h.make_tensor_value_info("x", TP.FLOAT, [1, 64])],
                     [h.make_tensor_value_info("p", TP.FLOAT, [1, 10])], [w])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), folder / "clf.onnx")
    samples = [{"x": rng.standard_normal((1, 64)).astype(np.float32)} for _ in range(200)]
    return build(folder / "clf.onnx", targets=["cpu"], samples=samples, out=folder / "clf.edgepack").path


class Observer:
    """A bare paho subscriber: arrival time and the message's own ts for every telemetry message."""

    def __init__(self, port: int, fleet: str):
        import paho.mqtt.client as mqtt
        self.rows: list[tuple[float, float]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(f"edgepack/v1/{fleet}/+/telemetry", qos=1)
        self.c.loop_start()

    def _on(self, c, u, msg):
        now = time.time()
        ts = json.loads(msg.payload)["ts"]
        with self.lock:
            self.rows.append((ts, now))

    def window(self, t0: float, t1: float) -> tuple[int, float]:
        """Messages stamped in [t0, t1) and their p95 delivery lag in seconds."""
        with self.lock:
            lags = [arr - ts for ts, arr in self.rows if t0 <= ts < t1]
        return len(lags), float(np.percentile(lags, 95)) if lags else float("inf")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of ``pid`` (from /proc)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def step(n: int, bundle: Path, broker: Broker, seconds: float) -> dict:
    from edgepack.fleet.simulate import SimSettings, Simulator
    fleet = f"bench{n}"
    obs = Observer(broker.port, fleet)
    sim = Simulator(SimSettings(devices=n, bundle=bundle, broker=f"mqtt://127.0.0.1:{broker.port}", fleet=fleet,
                                duration=None, rate=RATE, telemetry_interval=INTERVAL, drift_window=30.0))
    t_boot = time.monotonic()
    try:
        sim.start()
        boot_s = time.monotonic() - t_boot
        time.sleep(WARMUP)
        cpu0, bcpu0, w0, lag0 = cpu_seconds(), cpu_seconds(broker.proc.pid), time.time(), sim.stats()
        time.sleep(seconds)
        cpu1, bcpu1, w1, stats = cpu_seconds(), cpu_seconds(broker.proc.pid), time.time(), sim.stats()
        rss, threads = rss_mb(), threading.active_count()
    finally:
        sim.stop()
    time.sleep(1.0)                                         # the stragglers of the window arrive
    got, lag95 = obs.window(w0, w1)
    obs.close()
    wall = w1 - w0
    expected = n * wall / INTERVAL
    floor = n * (wall / INTERVAL - 1)                         # each device's period starts at its own phase
    answered = stats["answered"] - lag0["answered"]
    out = {"devices": n, "boot_s": round(boot_s, 1), "window_s": round(wall, 1), "telemetry": got,
           "expected": round(expected), "delivered": got / expected, "lag_p95_s": lag95,
           "feeder_lag_p95_ms": stats["lag_ms"]["p95"], "requests_per_s": answered / wall,
           "busy": stats["busy"], "errors": stats["errors"],
           "cores": (cpu1 - cpu0) / wall, "broker_cores": (bcpu1 - bcpu0) / wall,
           "cpu_ms_per_device_s": (cpu1 - cpu0) / wall / n * 1e3, "rss_mb": round(rss), "threads": threads}
    out["holds"] = got >= 0.95 * floor and lag95 <= 1.0 and out["feeder_lag_p95_ms"] <= 250
    return out


def bare_step(n: int, broker: Broker, seconds: float, payload: bytes) -> dict:
    """Baseline: n plain paho clients publishing ``payload`` every INTERVAL (one network thread each)."""
    import paho.mqtt.client as mqtt
    clients = []
    for i in range(n):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bare-{i}", protocol=mqtt.MQTTv5)
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        clients.append(c)
    stop = threading.Event()

    def publish():
        nxt = time.monotonic()
        while not stop.is_set():
            for i, c in enumerate(clients):
                c.publish(f"edgepack/v1/bare/b{i}/telemetry", payload, qos=1)
            nxt += INTERVAL
            stop.wait(max(0.0, nxt - time.monotonic()))
    t = threading.Thread(target=publish, daemon=True)
    t.start()
    time.sleep(WARMUP)
    cpu0, w0 = cpu_seconds(), time.time()
    time.sleep(seconds)
    cpu1, w1 = cpu_seconds(), time.time()
    stop.set()
    t.join()
    for c in clients:
        c.disconnect()
        c.loop_stop()
    cores = (cpu1 - cpu0) / (w1 - w0)
    return {"devices": n, "cpu_ms_per_device_s": cores / n * 1e3, "cores": cores}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default="10,50,100,200,400,800")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per step")
    ap.add_argument("--budget", type=float, default=420.0, help="stop stepping after this many seconds")
    args = ap.parse_args()
    start = time.monotonic()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; per device {RATE:g} request/s, "
          f"telemetry every {INTERVAL:g} s; {args.seconds:g} s measured per step")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(Path(tmp))
        broker = Broker(Path(tmp))
        broker.start()
        results, largest = [], None
        try:
            for n in [int(s) for s in args.steps.split(",")]:
                r = step(n, bundle, broker, args.seconds)
                results.append(r)
                print(f"N={n:5d}: telemetry {r['telemetry']}/{r['expected']} ({r['delivered']:.1%}), lag p95 "
                      f"{r['lag_p95_s'] * 1e3:.0f} ms, feeder lag p95 {r['feeder_lag_p95_ms']:.0f} ms, "
                      f"{r['requests_per_s']:.0f} req/s, busy {r['busy']}, errors {r['errors']}, process "
                      f"{r['cores']:.2f} cores ({r['cpu_ms_per_device_s']:.2f} ms CPU per device-second), broker "
                      f"{r['broker_cores']:.2f} cores, RSS {r['rss_mb']} MB, {r['threads']} threads, boot "
                      f"{r['boot_s']} s -> "
                      f"{'holds' if r['holds'] else 'FAILS'}", flush=True)
                if not r["holds"]:
                    break
                largest = r
                if time.monotonic() - start > args.budget:
                    print(f"time budget of {args.budget:g} s reached")
                    break
            if largest is not None:
                payload = json.dumps({"schema": 1, "seq": 1, "ts": time.time(), "device": "b", "fleet": "bare",
                                      "telemetry": {"pad": "x" * 900}}).encode()
                base = bare_step(largest["devices"], broker, args.seconds / 2, payload)
                print(f"largest fleet that holds: {largest['devices']} devices "
                      f"({largest['requests_per_s']:.0f} inferences/s, {largest['devices'] / INTERVAL:.0f} telemetry "
                      f"msgs/s)")
                print(f"baseline, {base['devices']} bare paho publishers (same period, ~1 KB): "
                      f"{base['cpu_ms_per_device_s']:.3f} ms CPU per device-second; real agents "
                      f"{largest['cpu_ms_per_device_s']:.3f} -> ratio "
                      f"{largest['cpu_ms_per_device_s'] / base['cpu_ms_per_device_s']:.1f}x")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
