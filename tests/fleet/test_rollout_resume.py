"""A rollout killed (SIGKILL) after its canary passed resumes from its state file: ``edgepack rollout --resume
--state FILE`` goes on with the next waves, the canary is not flashed again, and every device ends on the new
model having installed it exactly once. One killed mid-rollback finishes it without rolling back twice."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from .rollout_kit import Fleet, make, wait
from .test_rollout import _why, command


def _state(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def test_a_killed_rollout_resumes_without_reflashing_done_waves(broker, tmp_path):
    fleet = Fleet(tmp_path / "devices", broker.port, f"rk{int(time.time() * 1000) % 10**8}",
                  make(tmp_path / "v1.edgepack", "1")).start()
    try:
        time.sleep(1.0)
        state = tmp_path / "rollout.json"
        proc = subprocess.Popen(command(make(tmp_path / "v2.edgepack", "2"), fleet, broker.port, state, "--json"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait(lambda: (_state(state) or {"waves": [{}]})["waves"][0].get("state") == "passed", 90)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        killed = _state(state)
        assert killed["status"] == "running" and killed["waves"][0]["state"] == "passed"
        assert killed["waves"][-1]["state"] == "planned"
        done = subprocess.run([sys.executable, "-m", "edgepack.cli.main", "rollout", "--resume", "--state", str(state),
                               "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, _why(done)
        doc = json.loads(done.stdout)
        assert doc["status"] == "completed" and doc["id"] == killed["id"]
        assert doc["waves"][0] == killed["waves"][0]                  # the canary wave was left as it was
        assert [e["event"] for e in doc["log"]].count("resume") == 1
        assert all(w["state"] == "passed" for w in doc["waves"])
        for d in fleet.ids:
            assert fleet.version(d) == "2"
            assert len(fleet.installs(d)) == 2, fleet.installs(d)     # the seed, then this update, once
        interrupted = [w for w in doc["waves"] if any("not flashed again" in (f.get("reason") or "")
                                                      for f in w["flash"].values())]
        assert len(interrupted) <= 1       # a wave the kill caught in its flash: its committed devices were kept
    finally:
        fleet.stop()


def test_resuming_a_stopped_wave_rolls_back_only_devices_still_on_the_bundle(broker, tmp_path):
    """Killed between the canary's failed verdict and the end of its rollback: on --resume, a device that still
    serves the bundle is rolled back, one that already went back is left alone (a second rollback would switch it
    to the bad bundle again, which sits in its other slot)."""
    from edgepack.fleet.flash import FlashSettings, flash
    from edgepack.fleet.rollback import rollback
    from edgepack.fleet.rollout import RolloutSettings, describe
    from edgepack.fleet.rollout_state import new_state, plan_waves, save

    url = f"mqtt://127.0.0.1:{broker.port}"
    fleet = Fleet(tmp_path / "devices", broker.port, f"rb{int(time.time() * 1000) % 10**8}",
                  make(tmp_path / "v1.edgepack", "1"), n=3).start()
    try:
        bad = make(tmp_path / "bad.edgepack", "2", "errors")
        back, still, never = fleet.ids
        assert all(r["ok"] for r in flash(bad, broker=url, devices=[back, still], fleet=fleet.fleet,
                                          settings=FlashSettings(discovery=0.5, timeout=60)))
        assert rollback(broker=url, devices=[back], fleet=fleet.fleet, discovery=0.5)[0]["ok"]
        doc = new_state(bundle=describe(bad), fleet=fleet.fleet, broker=url, skipped=[],
                        settings=RolloutSettings(discovery=1.0).to_doc(),
                        waves=plan_waves([back, still, never], 0.5, [1.0]))
        doc["waves"] = [{**doc["waves"][0], "devices": [back, still], "state": "failed",
                         "decision": {"passed": False, "failed": ["error_rate"], "reason": "error_rate gate: ...",
                                      "gates": []}},
                        {**doc["waves"][1], "devices": [never]}]
        doc["updated_devices"], doc["reason"] = [back, still], "canary stopped the rollout: error_rate gate: ..."
        save(tmp_path / "s.json", doc)
        before = {d: fleet.installs(d) for d in fleet.ids}
        done = subprocess.run([sys.executable, "-m", "edgepack.cli.main", "rollout", "--resume", "--state",
                               str(tmp_path / "s.json"), "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 11, _why(done)
        out = json.loads(done.stdout)
        assert out["status"] == "stopped" and out["rollback"]["ok"]
        assert out["rollback"]["devices"][back]["state"] == "not_needed"
        assert out["rollback"]["devices"][still]["state"] == "rolled_back"
        assert all(fleet.version(d) == "1" for d in fleet.ids)
        after = {d: fleet.installs(d) for d in fleet.ids}
        assert after[back] == before[back] and after[never] == before[never] == ["seed"]
        assert len(after[still]) == len(before[still]) + 1                 # its one rollback
    finally:
        fleet.stop()
