"""edgepack rollout --require-shadow S with M4's shadow testing, on real agents (make_agent: state folder, flash
receiver, shadow installer) fed traffic: each wave first runs the bundle as a shadow on its devices; a candidate
that agrees with the serving model is then flashed wave by wave, one that disagrees stops the rollout at the
canary's shadow before any device served it (nothing to roll back, the shadow removed)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.flash.devices import Device

from .test_rollout import _why
from .rollout_kit import TRAFFIC, make, wait

ARGS = ["--canary", "50%", "--waves", "100%", "--max-error-rate", "0.05", "--max-p95-ratio", "4", "--p95-floor-ms", "2",
        "--max-drift", "0.5",
        "--min-calls", "10", "--soak", "3", "--soak-max", "6", "--baseline-window", "2.5", "--baseline-wait", "6",
        "--discovery", "0.5", "--require-shadow", "3", "--shadow-share", "1", "--shadow-min-samples", "30"]


@pytest.fixture
def agents(broker, tmp_path):
    fleet = f"rs{int(time.time() * 1000) % 10**8}"
    v1 = make(tmp_path / "v1.edgepack", "1")
    devices = [Device(tmp_path / "d", broker.port, f"cam-{i}", fleet, v1, drift_window_seconds=1.0) for i in (1, 2)]
    stop = threading.Event()

    def feed(dev, rng):
        while not stop.wait(rng.exponential(1 / 15)):
            try:
                dev.agent.infer({"x": TRAFFIC[int(rng.integers(len(TRAFFIC)))]}, timeout=10)
            except Exception:  # noqa: BLE001  (the agent counts it)
                pass
    threads = []
    for i, d in enumerate(devices):
        d.conf["telemetry_interval"] = 0.5
        d.start()
        threads.append(threading.Thread(target=feed, args=(d, np.random.default_rng(i)), daemon=True))
        threads[-1].start()
    time.sleep(1.0)
    yield fleet, devices
    stop.set()
    for t in threads:
        t.join(15)
    for d in devices:
        d.stop()


def _rollout(bundle, fleet, port, state):
    return subprocess.run([sys.executable, "-m", "edgepack.cli.main", "rollout", str(bundle), "--fleet", fleet,
                           "--broker", f"mqtt://127.0.0.1:{port}", *ARGS, "--state", str(state), "--json"],
                          capture_output=True, text=True, timeout=150)


def _history(dev: Device) -> list[str]:
    return [h["update_id"] for h in json.loads((dev.root / "state" / "ota.json").read_text())["history"]]


def test_an_agreeing_candidate_is_shadowed_then_flashed_wave_by_wave(broker, agents, tmp_path):
    fleet, devices = agents
    same = make(tmp_path / "v2.edgepack", "2", bias=1.0)                # new version, same answers
    done = _rollout(same, fleet, broker.port, tmp_path / "s.json")
    assert done.returncode == 0, _why(done)
    doc = json.loads(done.stdout)
    assert doc["status"] == "completed" and [len(w["devices"]) for w in doc["waves"]] == [1, 1]
    for w in doc["waves"]:
        verdict = w["shadow"]["devices"][w["devices"][0]]
        assert w["shadow"]["passed"] and verdict["passed"], w["shadow"]
        assert verdict["figures"]["samples"] >= 30 and verdict["figures"]["cosine_mean"] > 0.999999
        assert w["timing"]["shadow_s"] >= 3.0 and w["state"] == "passed"
    for d in devices:
        assert d.agent.rt.bundle.manifest["model"]["version"] == "2"
        assert len(_history(d)) == 2                                      # the seed, then the flash (the promotion)


def test_a_disagreeing_shadow_stops_the_rollout_before_any_device_serves_it(broker, agents, tmp_path):
    fleet, devices = agents
    other = make(tmp_path / "v2.edgepack", "2", bias=5.0)               # healthy, but answers differ
    done = _rollout(other, fleet, broker.port, tmp_path / "s.json")
    assert done.returncode == 11, _why(done)
    doc = json.loads(done.stdout)
    canary = doc["waves"][0]
    assert doc["status"] == "stopped" and canary["state"] == "failed" and canary["decision"]["failed"] == ["shadow"]
    assert "mean cosine" in doc["reason"] and canary["devices"][0] in doc["reason"]
    assert doc["updated_devices"] == [] and doc["waves"][1]["state"] == "planned"
    assert canary["flash"] == {}                                        # never flashed for real
    for d in devices:
        assert d.agent.rt.bundle.manifest["model"]["version"] == "1" and _history(d) == ["seed"]
    shadowed = next(d for d in devices if d.device_id == canary["devices"][0])
    assert wait(lambda: shadowed.agent.shadow is None, 10)             # the shadow was stopped and removed
