"""A rollout killed (SIGKILL) after its canary passed resumes from its state file: ``edgepack rollout --resume
--state FILE`` goes on with the next waves, the canary is not flashed again, and every device ends on the new
model having installed it exactly once."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from .rollout_kit import Fleet, make, wait
from .test_rollout import command


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
        assert done.returncode == 0, done.stderr
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
