"""The agent with a state folder: seeded by --bundle, hot swap on update while requests are in flight, status
reported on ota/status, telemetry and health; the inbox at start."""
from __future__ import annotations

import argparse
import json
import shutil
import threading

import numpy as np
import pytest

from edgepack_runtime.agentcli import make_agent, settings
from edgepack_runtime.errors import EdgepackError
from ota_helpers import X


def _conf(tmp_path, **kw):
    args = argparse.Namespace(telemetry_file=str(tmp_path / "telemetry.jsonl"), **kw)
    return settings(args)


def _bias(agent) -> float:
    return float(np.round((agent.infer({"x": X})["y"] - X).mean(), 4))


def test_agent_seeds_serves_and_swaps_without_dropping_requests(tmp_path, bundles):
    state = tmp_path / "state"
    agent = make_agent(_conf(tmp_path, state_dir=str(state), bundle=str(bundles["v1"])))
    assert agent.updater.status()["state"] == "committed" and agent.updater.status()["update_id"] == "seed"
    answers, errors, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                answers.append(_bias(agent))
            except Exception as exc:  # noqa: BLE001 - any dropped request fails the test below
                errors.append(repr(exc))
    with agent:
        assert _bias(agent) == 1.0
        old_rt = agent.rt
        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        st = agent.updater.install(bundles["v2"], update_id="u2")
        after_switch = _bias(agent)
        st3 = agent.updater.install(bundles["v3"], update_id="u3")
        stop.set()
        for t in threads:
            t.join(10)
        assert st["state"] == "committed" and st3["state"] == "committed"
        assert after_switch == 2.0 and _bias(agent) == 3.0
        assert not errors and len(answers) > 10 and set(answers) <= {1.0, 2.0, 3.0}
        assert old_rt._session is None                      # the old Runtime was closed once unused
        health = agent.health()
        assert health["version"] == "3" and health["ota"]["state"] == "committed"
        assert health["ota"]["active_slot"] == "a"
        snap = agent.publish_telemetry()
        assert snap["model_version"] == "3" and snap["ota"]["update_id"] == "u3"
    lines = [json.loads(line) for line in (tmp_path / "telemetry.jsonl").read_text().splitlines()]
    states = [m["state"] for m in lines if m["kind"] == "ota/status" and m["update_id"] == "u2"]
    assert states == ["verifying", "installing", "health_check", "switching", "committed"]


def test_agent_keeps_serving_when_an_update_fails(tmp_path, bundles):
    agent = make_agent(_conf(tmp_path, state_dir=str(tmp_path / "s"), bundle=str(bundles["v1"])))
    with agent:
        rt = agent.rt
        st = agent.updater.install(bundles["bad"], update_id="bad")
        assert st["state"] == "rolled_back" and agent.rt is rt and _bias(agent) == 1.0


def test_agent_starts_from_the_state_folder_and_installs_its_inbox(tmp_path, bundles):
    state = tmp_path / "state"
    make_agent(_conf(tmp_path, state_dir=str(state), bundle=str(bundles["v1"])))
    (state / "inbox").mkdir()
    shutil.copy(bundles["v2"], state / "inbox" / "v2.edgepack")
    agent = make_agent(_conf(tmp_path, state_dir=str(state), bundle=str(bundles["v1"])))   # --bundle ignored now
    with agent:
        assert _bias(agent) == 2.0 and agent.updater.status()["update_id"] == "inbox-v2"
    with pytest.raises(EdgepackError, match="has no model to serve"):
        make_agent(_conf(tmp_path, state_dir=str(tmp_path / "empty")))
    with pytest.raises(EdgepackError, match="first install .* failed"):
        make_agent(_conf(tmp_path, state_dir=str(tmp_path / "empty2"), bundle=str(bundles["bad"])))


def _until(predicate, timeout=20.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_agent_follows_installs_by_another_process_and_its_inbox(tmp_path, bundles):
    import subprocess
    import sys
    state = tmp_path / "state"
    agent = make_agent(_conf(tmp_path, state_dir=str(state), bundle=str(bundles["v1"])))
    with agent:
        done = subprocess.run([sys.executable, "-m", "edgepack_runtime.cli", "install", str(bundles["v2"]),
                               "--state-dir", str(state), "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["state"] == "committed"
        assert _until(lambda: _bias(agent) == 2.0)                # swapped by the watcher, no restart
        (state / "inbox").mkdir(exist_ok=True)
        shutil.copy(bundles["v3"], state / "inbox" / ".v3.tmp")
        (state / "inbox" / ".v3.tmp").rename(state / "inbox" / "v3.edgepack")   # as --via dir: delivers
        assert _until(lambda: _bias(agent) == 3.0)
        assert agent.updater.status()["update_id"] == "inbox-v3" and not (state / "inbox" / "v3.edgepack").exists()
        assert not agent.health()["problems"]


def test_status_follows_changes_made_by_another_process(tmp_path, bundles):
    from edgepack_runtime.ota import Updater
    agent_side, cli_side = Updater(tmp_path / "s"), Updater(tmp_path / "s")
    agent_side.install(bundles["v1"], update_id="u1")
    cli_side.install(bundles["v2"], update_id="u2")
    st = agent_side.status()
    assert st["update_id"] == "u2" and st["active_slot"] == "b" and st["model"]["version"] == "2"
