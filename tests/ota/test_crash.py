"""SIGKILL at every state of the OTA table, then recover() in a fresh process: the device serves a consistent
model, the old or the new one, never none; and the loop guard stops an update that crashes the device.

Each case runs its scenario in a process with EDGEPACK_OTA_CRASH_AT=<state> (SIGKILLed right after the state
is persisted) or <state>+ (right after its action ran), then recovers in a new process, then starts once
more. The states come from the table itself; each is killed in every scenario that passes through it (found
by a dry run), so a new state is covered without editing this file, and a state no scenario reaches fails
the test. crash_driver.py runs all cases in one interpreter that forks a process per run.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import crash_driver
from edgepack_runtime.ota import Updater
from edgepack_runtime.ota.faults import ENV
from edgepack_runtime.ota.table import RESTING, TABLE

DRIVER = Path(crash_driver.__file__)
# scenario -> (state template, bundle, models the device may serve after any crash and recovery)
SCENARIOS = {"install": ("v1", "v2", {1.0, 2.0}), "download": ("v1", "v2", {1.0, 2.0}),
             "bad": ("v1", "bad", {1.0}), "tampered": ("v1", "tampered", {1.0}),
             "rollback": ("v1v2", None, {1.0, 2.0}), "inbox": ("inbox", None, {1.0})}
RUNS_AS = {"bad": "install", "tampered": "install"}
CASES = [(s, after) for s in TABLE.states() for after in (False, True)]


def _fresh(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


def _templates(root: Path, files: dict) -> dict:
    """Empty with v1 in inbox/, v1 installed, v1 then v2 installed."""
    templates = {}
    for name, installs in (("v1", ["v1"]), ("v1v2", ["v1", "v2"]), ("inbox", [])):
        templates[name] = root / f"template-{name}"
        up = Updater(templates[name])
        for i, key in enumerate(installs):
            assert up.install(files[key], update_id=f"seed{i}")["state"] == "committed"
    (templates["inbox"] / "inbox").mkdir(parents=True)
    shutil.copy(files["v1"], templates["inbox"] / "inbox" / "v1.edgepack")
    return templates


def _visits(root: Path, templates: dict, files: dict) -> dict:
    """Every state each scenario enters, from a dry run in this process (on_status reports each entry)."""
    visits, original = {}, Updater.__init__
    for scenario, (template, bundle, _) in SCENARIOS.items():
        seen = visits[scenario] = []

        def recording(self, *a, _seen=seen, **kw):
            original(self, *a, **kw)
            self.on_status = lambda st: _seen.append(st["state"])
        Updater.__init__ = recording
        try:
            crash_driver.run(_fresh(templates[template], root / f"dry-{scenario}"), RUNS_AS.get(scenario, scenario),
                             None if bundle is None else str(files[bundle]))
        finally:
            Updater.__init__ = original
    return visits


@pytest.fixture(scope="module")
def world(bundles, tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    tampered = root / "tampered.edgepack"
    data = bytearray(bundles["v2"].read_bytes())
    data[data.find(b"bias") + 40] ^= 0xFF
    tampered.write_bytes(bytes(data))
    files = {**bundles, "tampered": tampered}
    templates = _templates(root, files)
    visits = _visits(root, templates, files)
    jobs, meta = [], {}
    for state_name, after in CASES:
        point = f"{state_name}{'+' if after else ''}"
        meta[point] = [s for s, seen in visits.items() if state_name in seen]
        for scenario in meta[point]:
            template, bundle, _ = SCENARIOS[scenario]
            state = _fresh(templates[template], root / f"case-{scenario}-{point}")
            jobs.append({"id": f"{scenario}@{point}", "state": str(state), "scenario": RUNS_AS.get(scenario, scenario),
                         "bundle": None if bundle is None else str(files[bundle]), "crash": point})
    (root / "jobs.json").write_text(json.dumps(jobs))
    done = _driver("batch", root / "jobs.json", root / "out.json")
    assert done.returncode == 0, done.stderr[-3000:]
    return {"templates": templates, "files": files, "scenario": meta, "jobs": {j["id"]: j for j in jobs},
            "results": json.loads((root / "out.json").read_text())}


def _driver(*args, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash:
        env[ENV] = crash
    return subprocess.run([sys.executable, str(DRIVER), *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("state_name,after", CASES,
                         ids=[f"{s}-{'after-action' if a else 'on-entry'}" for s, a in CASES])
def test_sigkill_at_every_state_leaves_a_consistent_model(world, state_name, after):
    """Every scenario that passes through the state is killed there; each device comes back consistent."""
    point = f"{state_name}{'+' if after else ''}"
    assert world["scenario"][point], f"no crash scenario reaches state {state_name}: add one to SCENARIOS"
    for scenario in world["scenario"][point]:
        _check_case(world, f"{scenario}@{point}", SCENARIOS[scenario][2])


def _check_case(world, case: str, allowed: set) -> None:
    res = world["results"][case]
    assert res["crashed"]["killed"], (case, res["crashed"])     # the process really died at that point
    for start in ("first", "second"):
        assert "error" not in res[start], (case, res[start].get("error"))
        out = res[start]["result"]
        assert out["bias"] in allowed, (case, start, out)        # serving old or new, never none
        st = out["status"]
        assert st["state"] in RESTING or (st["state"] == "downloading" and case.startswith("download@")), (case, st)
    assert res["second"]["result"]["bias"] == res["first"]["result"]["bias"], case   # a second start changes nothing
    state = Path(world["jobs"][case]["state"])
    assert not list((state / "slots").glob("*/.bundle.*.tmp")) and not list(state.glob(".ota.json.*")), case
    if res["first"]["result"]["status"]["state"] == "downloading":   # the transfer resumes, then installs it
        up = Updater(state)
        shutil.copy(world["files"]["v2"], up.staging_path("dl1"))
        assert up.install(up.staging_path("dl1"), update_id="dl1")["state"] == "committed", case


def test_crash_loop_in_health_check_is_rolled_back_by_the_loop_guard(world, tmp_path):
    state = _fresh(world["templates"]["v1"], tmp_path / "state")
    killed = _driver("run", state, "install", world["files"]["v2"], crash="health_check")
    assert killed.returncode == -signal.SIGKILL
    kills = 0
    while True:                                  # every start re-runs the check, which kills the device again
        done = _driver("recover", state, crash="health_check")
        if done.returncode != -signal.SIGKILL:
            break
        kills += 1
        assert kills <= 10, "the loop guard never tripped"
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert kills == 3 and out["status"]["state"] == "rolled_back" and out["bias"] == 1.0
    assert "loop guard" in out["status"]["reason"] and "health_check" in out["status"]["reason"]
    assert json.loads(_driver("recover", state).stdout)["status"]["state"] == "rolled_back"
