"""edgepack rollout on a real mosquitto against the fleet simulator (real agents with A/B state folders) fed traffic.

A good bundle reaches every device wave by wave; a slower one, one that errors on the fleet's traffic and one
whose drift baseline does not match it each stop at the canary, which is rolled back (it serves the old model
again) while the other devices are never flashed. The rollout runs as its own process (``python -m
edgepack.cli.main rollout``), as an operator runs it: in the test's process its imports and threads would
stall the agents and blur their latency. Bundles and fleet: tests/fleet/rollout_kit.py."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from .rollout_kit import Fleet, make

LIMITS = ["--max-error-rate", "0.05", "--max-p95-ratio", "4", "--p95-floor-ms", "2", "--max-drift", "0.5",
          "--min-calls", "10"]
TIMES = ["--soak", "3", "--soak-max", "6", "--baseline-window", "4", "--baseline-wait", "8", "--discovery", "0.5",
         "--flash-timeout", "60", "--rollback-timeout", "30"]


def command(bundle, fleet: Fleet, port: int, state, *extra) -> list[str]:
    return [sys.executable, "-m", "edgepack.cli.main", "rollout", str(bundle), "--fleet", fleet.fleet,
            "--broker", f"mqtt://127.0.0.1:{port}", "--canary", "10%", "--waves", "25%,50%,100%", *LIMITS, *TIMES,
            "--state", str(state), *extra]


def _why(done: subprocess.CompletedProcess) -> str:
    """What went wrong, from the JSON record when there is one (--json keeps stderr quiet)."""
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        return done.stderr[-3000:]
    return json.dumps({"reason": doc.get("reason"), "waves": [{k: w.get(k) for k in ("name", "state", "decision",
                                                                                    "baseline", "figures", "timing")}
                                                              for w in doc.get("waves", [])]})[:6000]


def rollout(*args, timeout: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def fleet(broker, tmp_path, request):
    name = f"ro{abs(hash(request.node.name)) % 10**8}"
    f = Fleet(tmp_path / "devices", broker.port, name, make(tmp_path / "v1.edgepack", "1")).start()
    time.sleep(1.0)       # past the agents' first (warming) telemetry period
    yield f
    f.stop()


def test_good_bundle_reaches_every_device_in_waves(broker, fleet, tmp_path):
    state = tmp_path / "rollout.json"
    done = rollout(make(tmp_path / "v2.edgepack", "2"), fleet, broker.port, state, "--json")
    assert done.returncode == 0, _why(done)
    doc = json.loads(done.stdout)
    assert doc["status"] == "completed" and doc["reason"] is None
    assert [w["name"] for w in doc["waves"]] == ["canary", "wave 1", "wave 2", "wave 3"]
    assert [len(w["devices"]) for w in doc["waves"]] == [1, 1, 1, 2]
    assert sorted(d for w in doc["waves"] for d in w["devices"]) == [f"dev-{i:04d}" for i in range(1, 6)]
    for w in doc["waves"]:
        assert w["state"] == "passed" and w["decision"]["passed"], w["decision"]
        gates = {g["gate"]: g for g in w["decision"]["gates"]}
        assert gates["p95_ratio"]["judged"] and gates["error_rate"]["value"] == 0.0
        assert gates["drift"]["judged"] and gates["drift"]["value"] <= 0.5
        assert w["figures"]["all"]["calls"] >= 10 and w["baseline"]["all"]["calls"] >= 10
        assert all(w["flash"][d]["state"] == "committed" for d in w["devices"])
    assert json.loads(state.read_text()) == doc                        # the state file is the result
    for d in fleet.ids:
        assert fleet.version(d) == "2"
        assert len(fleet.installs(d)) == 2                            # the seed, then this update once


@pytest.mark.parametrize("kind, gate", [("slow", "p95_ratio"), ("errors", "error_rate"), ("drift", "drift")])
def test_bad_bundle_stops_at_the_canary_and_rolls_it_back(broker, fleet, tmp_path, kind, gate):
    state = tmp_path / "rollout.json"
    done = rollout(make(tmp_path / f"{kind}.edgepack", "2", kind), fleet, broker.port, state)
    assert done.returncode == 11, _why(done)                           # stopped
    assert "canary failed" in done.stderr and f"{gate} gate:" in done.stderr and "rollout stopped:" in done.stderr
    assert "rollout of rolled@2 to fleet" in done.stdout
    doc = json.loads(state.read_text())
    assert doc["status"] == "stopped"
    canary, *rest = doc["waves"]
    assert canary["state"] == "failed" and canary["decision"]["failed"] == [gate], canary["decision"]
    assert [w["state"] for w in rest] == ["planned"] * len(rest)
    failed = next(g for g in canary["decision"]["gates"] if g["gate"] == gate)
    assert failed["devices"] == canary["devices"] and gate in doc["reason"]
    new = canary["figures"]["all"]
    if kind == "slow":
        assert failed["value"] > 4.0 and failed["new_ms"] > 8.0 and failed["new_ms"] > 4 * failed["old_ms"]
    elif kind == "errors":
        assert new["error_rate"] == 1.0 and new["errors"] >= 10 and new["calls"] == 0
    else:
        assert new["drift_windows"] >= 1 and new["drift_share"] > 0.5
    assert doc["rollback"]["ok"] and doc["updated_devices"] == canary["devices"]
    assert all(r["state"] == "rolled_back" for r in doc["rollback"]["devices"].values())
    for d in fleet.ids:
        assert fleet.version(d) == "1"                                  # the canary serves the old model again
        if d not in canary["devices"]:
            assert fleet.installs(d) == ["seed"]                      # never flashed
