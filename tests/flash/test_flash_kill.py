"""The device side of a flash killed (SIGKILL) in mid-transfer: a real ``edgepack-device agent`` process is
killed while downloading and started again on the same state folder; it resumes from its chunk map (asking
only for what it does not hold) and the same ``flash`` run completes."""
from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
import uuid

from edgepack.fleet.flash import FlashSettings, flash

from .bundles import make_bundle
from .devices import wait


def _agent(tmp_path, port, fleet, first):
    cmd = [sys.executable, "-m", "edgepack_runtime.cli", "agent", "--bundle", str(first), "--state-dir",
           str(tmp_path / "state"), "--broker", f"mqtt://127.0.0.1:{port}", "--device-id", "cam-k", "--fleet", fleet,
           "--http-port", "0", "--outbox", str(tmp_path / "outbox.db"), "--telemetry-interval", "3600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().startswith("edgepack agent"), "the agent did not start"
    return proc


def _held(state) -> set[int]:
    """The chunks the device's persisted chunk map says it holds."""
    for part in (state / "staging").glob("*.part.json"):
        try:
            bits = base64.b64decode(json.loads(part.read_text())["have"])
        except (OSError, ValueError, KeyError):
            return set()
        return {i for i in range(8 * len(bits)) if bits[i >> 3] & (1 << (i & 7))}
    return set()


def test_an_agent_killed_mid_transfer_resumes_from_its_chunk_map(broker, tmp_path):
    fleet = f"f{uuid.uuid4().hex[:8]}"
    first = make_bundle(tmp_path / "v1.edgepack", "1", 1.0)
    big = make_bundle(tmp_path / "big.edgepack", "5", 5.0, pad=3_000_000)
    proc = _agent(tmp_path, broker.port, fleet, first)
    results = []
    t = threading.Thread(target=lambda: results.extend(flash(
        big, broker=f"mqtt://127.0.0.1:{broker.port}", devices=["cam-k"], fleet=fleet,
        settings=FlashSettings(chunk_size=4096, max_inflight=2, timeout=90, discovery=2.0))))
    t.start()
    try:
        assert wait(lambda: len(_held(tmp_path / "state")) >= 100, timeout=60), "no progress saved"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        saved = _held(tmp_path / "state")
        proc = _agent(tmp_path, broker.port, fleet, first)
        t.join(90)
    finally:
        proc.terminate()
        proc.wait(20)
    (r,) = results
    assert r["state"] == "committed", r
    chunks = -(-big.stat().st_size // 4096)
    device, host = r["device_transfer"], r["host"]
    assert device["resumed"] == len(saved) >= 100, (device, len(saved))   # the new process started from the map
    assert device["requested"] == chunks - len(saved), device              # and asked only for the rest
    assert host["sent"] == chunks + host["resent"] and not saved & set(host["resent_chunks"]), host
