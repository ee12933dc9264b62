"""Run OTA scenarios and recoveries in fresh processes (the crash tests SIGKILL them via EDGEPACK_OTA_CRASH_AT).

    python crash_driver.py run STATE_DIR SCENARIO [BUNDLE]   # install / download / rollback / inbox
    python crash_driver.py recover STATE_DIR                 # prints {"status", "bias"} as JSON
    python crash_driver.py batch JOBS.json OUT.json          # many crash cases, one fork per process

``batch`` imports the runtime once, then forks one child per crash case (the child sets the crash point and
runs the scenario until it SIGKILLs itself), then one child per case that recovers the state folder (no
crash point: a device starting again), then one more (a second start must change nothing). Every run and
every recovery is its own process; only the import cost is shared. The parent never opens a Runtime, so no
backend thread exists when it forks. Only the device runtime is imported (no onnx).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path

import numpy as np

from edgepack_runtime import Runtime
from edgepack_runtime.ota import Updater
from edgepack_runtime.ota.faults import ENV

X = np.arange(4, dtype=np.float32).reshape(1, 4)


def run(state: Path, scenario: str, bundle: str | None) -> dict:
    up = Updater(state)
    if scenario == "install":
        return up.install(bundle, update_id="new")
    if scenario == "download":
        up.begin_download("dl1")
        shutil.copy(bundle, up.staging_path("dl1"))
        up.downloaded("dl1")
        return up.install(up.staging_path("dl1"), update_id="dl1")
    if scenario == "rollback":
        return up.rollback()
    if scenario == "inbox":
        return up.recover()
    raise SystemExit(f"unknown scenario {scenario}")


def recover(state: Path) -> dict:
    """A device start: recover(), then answer one request from the active bundle (bias = the model's constant)."""
    up = Updater(state)
    status = up.recover()
    bias = None
    if up.active() is not None:
        with Runtime.open(up.active()) as rt:
            bias = float(np.round((rt.run({"x": X})["y"] - X).mean(), 4))
    return {"status": status, "bias": bias}


def _in_child(work, crash: str | None = None) -> dict:
    """Run ``work()`` in a forked process; its JSON result, or how it died."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                         # the child: a fresh process as far as the update goes
        os.close(read)
        code = 0
        try:
            if crash:
                os.environ[ENV] = crash
            else:
                os.environ.pop(ENV, None)
            out = {"result": work()}
        except BaseException:                            # noqa: BLE001 - reported to the parent
            out, code = {"error": traceback.format_exc()[-3000:]}, 1
        with os.fdopen(write, "w") as fh:
            fh.write(json.dumps(out, default=str))
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as fh:
        text = fh.read()
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return {"killed": killed, **(json.loads(text) if text else {})}


def batch(jobs_file: Path, out_file: Path) -> None:
    jobs = json.loads(Path(jobs_file).read_text())
    results = {}
    for job in jobs:
        state, bundle = Path(job["state"]), job.get("bundle")
        crashed = _in_child(lambda: run(state, job["scenario"], bundle), crash=job["crash"])
        first = _in_child(lambda: recover(state))
        second = _in_child(lambda: recover(state))
        results[job["id"]] = {"crashed": crashed, "first": first, "second": second}
    Path(out_file).write_text(json.dumps(results, default=str))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "batch":
        import onnxruntime  # noqa: F401 - imported once here, not in every child
        batch(Path(sys.argv[2]), Path(sys.argv[3]))
    elif what == "recover":
        print(json.dumps(recover(Path(sys.argv[2])), default=str))
    else:
        print(json.dumps(run(Path(sys.argv[2]), sys.argv[3], (sys.argv[4:] or [None])[0]), default=str))
