"""The rollout's state file: plan, waves done, devices per wave, baseline figures, decisions.

One JSON document (``schema`` 1), rewritten atomically after every step (temporary file in the same folder,
fsync, rename, fsync of the folder), so a killed ``edgepack rollout`` leaves either the old or the new
document, never half of one; ``edgepack rollout --resume --state FILE`` reads it and goes on. A lock file
(``FILE.lock``, ``flock``) keeps two rollout processes off one state file.

Wave states: ``planned`` -> ``flashing`` -> ``soaking`` -> ``passed`` | ``failed``; a failed wave ends the
rollout (``status`` ``stopped``) after the updated devices were rolled back (``rolling_back`` while it runs).
Rollout ``status``: ``running``, ``completed`` (every wave passed), ``stopped`` (a gate failed).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import time
from pathlib import Path

from edgepack_runtime.atomic import write_atomic

from ..errors import EdgepackError

SCHEMA = 1
WAVE_STATES = ("planned", "shadowing", "flashing", "soaking", "passed", "failed")
STATUSES = ("running", "completed", "stopped")


class RolloutError(EdgepackError):
    """A rollout cannot start or go on (bad plan, bad state file, bundle changed, another rollout running)."""


def parse_share(text: str, what: str) -> float:
    """``"10%"`` or ``"10"`` -> 0.10; a share of the fleet in (0, 100] percent."""
    raw = str(text).strip().rstrip("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise RolloutError(f"{what} must be a percentage like 10% (got {text!r})") from None
    if not math.isfinite(value) or not 0 < value <= 100:
        raise RolloutError(f"{what} must be a percentage in (0%, 100%] (got {text!r})")
    return value / 100


def parse_waves(text: str) -> list[float]:
    """``"25%,50%,100%"`` -> [0.25, 0.5, 1.0]: cumulative shares, strictly increasing."""
    shares = [parse_share(part, "each wave") for part in str(text).split(",") if part.strip()]
    if not shares:
        raise RolloutError("--waves needs at least one percentage, e.g. 25%,50%,100%")
    if any(b <= a for a, b in zip(shares, shares[1:])):
        raise RolloutError(f"--waves must increase (cumulative shares of the fleet), got {text!r}",
                           hint="e.g. --waves 25%,50%,100%")
    return shares


def order(devices: list[str]) -> list[str]:
    """A stable order that spreads canaries across naming schemes (sites, racks): by sha256 of the id."""
    return sorted(devices, key=lambda d: (hashlib.sha256(d.encode()).hexdigest(), d))


def plan_waves(devices: list[str], canary: float, waves: list[float]) -> list[dict]:
    """Split ``devices`` into the canary (at least one device) and the waves (cumulative shares); waves that
    add no device at this fleet size are left out."""
    ordered, out, done = order(devices), [], 0
    for i, share in enumerate([canary] + [w for w in waves if w > canary]):
        upto = min(len(ordered), max(1, math.ceil(share * len(ordered) - 1e-9)))
        if upto > done:
            out.append({"name": "canary" if i == 0 else f"wave {i}", "share": share, "devices": ordered[done:upto],
                        "state": "planned", "flash": {}, "baseline": None, "figures": None, "decision": None,
                        "started": None, "ended": None, "timing": {}})
            done = upto
    return out


def new_state(*, bundle: dict, fleet: str, broker: str, settings: dict, waves: list[dict], skipped: list[dict]) -> dict:
    now = time.time()
    return {"schema": SCHEMA, "kind": "edgepack-rollout", "id": os.urandom(6).hex(), "created": now, "updated": now,
            "bundle": bundle, "fleet": fleet, "broker": broker, "settings": settings, "skipped": skipped,
            "waves": waves, "updated_devices": [], "rollback": None, "status": "running", "reason": None,
            "log": []}


def save(path: Path, doc: dict) -> None:
    """Write ``doc`` to ``path`` atomically (tmp + fsync + rename + fsync of the folder)."""
    path = Path(path)
    doc["updated"] = time.time()
    data = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False).encode()
    write_atomic(path, data)


def load(path: Path) -> dict:
    """The state document at ``path``; ``RolloutError`` saying what is wrong when it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise RolloutError(f"no rollout state file at {path}", hint="start a rollout with --state FILE first") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise RolloutError(f"cannot read rollout state {path}: {str(exc)[:200]}",
                           hint="the file is not a rollout state (or was edited); start a new rollout") from None
    problem = _problem(doc)
    if problem:
        raise RolloutError(f"{path} is not a usable rollout state: {problem}",
                           hint="start a new rollout with another --state file")
    return doc


def _problem(doc) -> str | None:
    if not isinstance(doc, dict) or doc.get("kind") != "edgepack-rollout":
        return "it is not an edgepack rollout document"
    if doc.get("schema") != SCHEMA:
        return f"schema {doc.get('schema')!r} is not {SCHEMA} (written by another edgepack version)"
    if doc.get("status") not in STATUSES:
        return f"status {doc.get('status')!r} is not one of {', '.join(STATUSES)}"
    checks = [("bundle", dict), ("settings", dict), ("waves", list), ("fleet", str), ("broker", str),
              ("updated_devices", list)]
    for key, kind in checks:
        if not isinstance(doc.get(key), kind):
            return f"{key} must be a {kind.__name__}"
    if not isinstance(doc["bundle"].get("sha256"), str) or not isinstance(doc["bundle"].get("path"), str):
        return "bundle must name its path and sha256"
    for i, w in enumerate(doc["waves"]):
        if not isinstance(w, dict) or w.get("state") not in WAVE_STATES or not isinstance(w.get("devices"), list) \
                or not all(isinstance(d, str) for d in w["devices"]) or not isinstance(w.get("flash"), dict):
            return f"wave {i} is malformed"
    if not all(isinstance(d, str) for d in doc["updated_devices"]):
        return "updated_devices must list device ids"
    return None


class StateLock:
    """``with StateLock(path):`` holds ``path.lock`` (flock) or raises RolloutError when another process does."""

    def __init__(self, path: Path):
        self.path = Path(str(path) + ".lock")
        self.fd: int | None = None

    def __enter__(self) -> "StateLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise RolloutError(f"another edgepack rollout is running on {self.path.with_suffix('')}",
                               hint="wait for it to end (or stop it), then --resume") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
