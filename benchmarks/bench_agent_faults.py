"""Device agent under faults, against a real mosquitto on loopback:

1. No loss: a device publishes N telemetry messages while the broker is stopped (SIGTERM) or killed (SIGKILL)
   for a few seconds mid-stream and restarted; a monitor with a persistent session counts what arrives.
2. Drift: windows of in-distribution traffic (false alarms over a long run) and the share of windows of
   scaled, offset and class-mix-shifted inputs that alert when they close (i.e. within one window).

    python benchmarks/bench_agent_faults.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edgepack_runtime.drift import DriftMonitor, Thresholds, compute_baseline  # noqa: E402
from edgepack_runtime.link import MqttLink  # noqa: E402
from edgepack_runtime.outbox import Outbox  # noqa: E402
from tests.agent.conftest import Broker, Subscriber  # noqa: E402


def outage(kill: bool, n: int = 1000, down_s: float = 3.0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        b = Broker(Path(tmp))
        if kill:  # make the killed broker durable for what it acknowledged
            b.conf.write_text(b.conf.read_text() + "autosave_on_changes true\nautosave_interval 1\n")
        b.start()
        sub = Subscriber(b.port, "edgepack/v1/bench/d/telemetry", "bench-monitor")
        link = MqttLink(host="127.0.0.1", port=b.port, device_id="d", fleet="bench",
                        outbox=Outbox(Path(tmp) / "o.db"), backoff_base=0.1, backoff_cap=1.0)
        link.start()
        link.connected.wait(5)
        depth, t_restart = 0, None
        for i in range(n):
            link.publish("telemetry", {"i": i})
            if i == n // 3:
                (b.proc.kill() if kill else b.proc.terminate())
                b.proc.wait()
                t_down = time.monotonic()
            if i == 2 * n // 3:
                time.sleep(max(0.0, down_s - (time.monotonic() - t_down)))
                depth = len(link.outbox)
                b.start()
                t_restart = time.monotonic()
            time.sleep(0.002)
        ok = sub.wait_for(lambda: {m["seq"] for m in sub.on("telemetry")} >= set(range(1, n + 1)), timeout=60)
        sub.wait_for(lambda: len(link.outbox) == 0, timeout=30)
        drained = time.monotonic() - t_restart
        seqs = [m["seq"] for m in sub.on("telemetry")]
        missing = sorted(set(range(1, n + 1)) - set(seqs))
        print(f"{'SIGKILL' if kill else 'SIGTERM'}: published {n}, broker down {down_s:.1f}s, outbox peak {depth}, "
              f"received {len(set(seqs))} unique + {len(seqs) - len(set(seqs))} duplicates (by seq), "
              f"missing {len(missing)}, outbox left {len(link.outbox)}, all in {drained:.1f}s after restart"
              f"{'' if ok else ' (INCOMPLETE)'}")
        link.stop()
        sub.close()
        b.stop()


SHIFTS = (("scaled x2", {"scale": 2.0}), ("offset +1 sd", {"offset": 1.0}),
          ("class mix (push 2 sd toward class 0)", {"push": 2.0}),
          ("scaled x1.5", {"scale": 1.5}), ("offset +0.5 sd", {"offset": 0.5}))


def drift(null_windows: int = 400, trials: int = 50) -> None:
    """False alerts on calibration traffic, and the share of shifted windows that alert at their first close."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 5))

    def sample(scale=1.0, offset=0.0, push=0.0):
        x = rng.standard_normal((1, 16)) * scale + offset + push * w[:, 0] / np.linalg.norm(w[:, 0])
        return {"x": x.astype(np.float32)}, {"y": (x @ w).astype(np.float32)}

    calib = [sample() for _ in range(1000)]
    base = compute_baseline([c[0] for c in calib], [c[1] for c in calib])
    print("drift: 16-feature input, 5-class output, baseline from 1,000 calibration samples")
    for label, th in (("default thresholds", Thresholds()), ("psi 0.1, ks 0.1", Thresholds(psi=0.1, ks=0.1))):
        for window in (25, 50, 100):
            mon = DriftMonitor(base, window_count=window, thresholds=th)
            false = 0
            for _ in range(window * null_windows):
                mon.observe(*sample())
                if mon.window_full():
                    false += bool(mon.summary()["alerts"])
            rates = []
            for _, kw in SHIFTS:
                hits = 0
                for _ in range(trials):
                    mon = DriftMonitor(base, window_count=window, thresholds=th)
                    for _ in range(window):
                        mon.observe(*sample(**kw))
                    hits += bool(mon.summary()["alerts"])
                rates.append(f"{hits / trials:4.0%}")
            print(f"drift [{label}] window {window:3}: false alerts {false}/{null_windows} windows "
                  f"({window * null_windows} samples); alert within {window} samples: "
                  + ", ".join(f"{name} {r}" for (name, _), r in zip(SHIFTS, rates)))


if __name__ == "__main__":
    outage(kill=False)
    outage(kill=True)
    drift()
