"""The real agent process (`edgepack-device agent --state-dir`) SIGKILLed in the middle of an update it picked up
from its inbox, then started again: it answers on its HTTP API from a consistent model, and the update is
finished. (test_crash.py kills the bare Updater at every state; this is the same recovery through the agent.)"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from edgepack_runtime import wire
from edgepack_runtime.ota import Updater
from edgepack_runtime.ota.faults import ENV
from ota_helpers import X


def _start(state, crash=None):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash:
        env[ENV] = crash
    proc = subprocess.Popen([sys.executable, "-m", "edgepack_runtime.cli", "agent", "--state-dir", str(state),
                             "--http-port", "0", "--telemetry-interval", "60"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, int(match.group(1))


def _ask(port, path="/v1/infer", body=None):
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                                       headers={"Content-Type": "application/json"}), timeout=10) as r:
        return json.loads(r.read())


def _bias(port) -> float:
    y = wire.decode("y", _ask(port, body={"inputs": {"x": X.tolist()}})["outputs"]["y"], "float32")
    return float(np.round((y - X).mean(), 4))


@pytest.mark.parametrize("crash", ["health_check", "switching+"])
def test_agent_killed_mid_update_comes_back_consistent(tmp_path, bundles, crash):
    state = tmp_path / "state"
    assert Updater(state).install(bundles["v1"], update_id="u1")["state"] == "committed"
    (state / "inbox").mkdir()
    proc, port = _start(state, crash=crash)        # nothing to do at start; dies when the update reaches `crash`
    try:
        assert _bias(port) == 1.0
        shutil.copy(bundles["v2"], state / "inbox" / ".v2.tmp")
        os.replace(state / "inbox" / ".v2.tmp", state / "inbox" / "v2.edgepack")
        assert proc.wait(60) == -signal.SIGKILL                    # the watcher installed it and died at `crash`
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    proc, port = _start(state)
    try:
        assert _bias(port) == 2.0
        health = _ask(port, "/v1/health")
        assert health["ota"]["state"] == "committed" and health["ota"]["update_id"] == "inbox-v2"
    finally:
        proc.terminate()
        proc.wait(20)
