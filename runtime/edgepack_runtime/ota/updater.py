"""``Updater``: the device side of an over-the-air model update (see ``ota/__init__.py`` for the layout).

    up = Updater(state_dir, profile="raspberry-pi-5", on_switch=agent.swap_bundle)
    up.recover()                          # at start: finish or undo an interrupted update, install inbox/
    up.install(path, update_id="u1")      # verify -> slot -> health check -> switch -> committed (or rolled back)
    up.rollback()                         # back to the previous slot
    up.status()                           # {"update_id", "state", "progress", "reason", "active_slot", "model", "ts", ...}

Every state change is one row of ``table.TABLE``, persisted to ``ota.json`` before its action runs. One
update runs at a time: a thread lock in the process and ``flock`` on ``<state_dir>/.lock`` across processes
(the agent and ``edgepack-device install`` may share a state folder).
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ..signing import trust_set
from . import store
from .actions import ACTIONS
from .checks import checked_budget, checked_id, checked_meta, describe_slot, inbox_id
from .downloads import DownloadHooks
from .errors import NewerStateError, OtaError, StateError
from .faults import crash_point
from .slots import Slots, other
from .table import PROGRESS, RESTING, TABLE

MAX_RESUMES = 3          # loop guard: restarts tolerated in one state of one update before giving up

try:
    import fcntl
except ImportError:      # not on Windows: the thread lock alone
    fcntl = None


def _quiet(_status: dict) -> None:
    return None


class Updater(DownloadHooks):
    """A/B model updates in ``state_dir``; every public method is thread-safe and blocking."""

    def __init__(self, state_dir: str | Path, *, trust_keys=(), profile: str | None = None,
                 on_status: Callable[[dict], None] = _quiet, on_switch: Callable[[Path], None] = _quiet,
                 health_budget_ms: float | None = None, backend: str | None = None,
                 max_resumes: int = MAX_RESUMES):
        self.dir = Path(state_dir)
        self.path = self.dir / "ota.json"
        self.slots = Slots(self.dir / "slots")
        self.staging_dir, self.inbox_dir = self.dir / "staging", self.dir / "inbox"
        self.trust_keys, self.profile, self.backend = trust_set(trust_keys or ()), profile, backend
        self.on_status, self.on_switch = on_status or _quiet, on_switch or _quiet
        self.health_budget_ms, self.max_resumes = health_budget_ms, max_resumes
        self._lock = threading.RLock()
        self._held = False
        self.doc: dict | None = None
        self.problem: str | None = None
        self._read()

    # public API ------------------------------------------------------------------------
    def active(self) -> Path | None:
        """The bundle the device must serve now (``slots/active``), or None before the first install."""
        slot = self.slots.active()
        return self.slots.bundle(slot) if slot else None

    def staging_path(self, update_id: str) -> Path:
        """Where a download for ``update_id`` is written (same filesystem as the slots)."""
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        return self.staging_dir / f"{checked_id(update_id)}.edgepack"

    def free_bytes(self) -> int:
        """Free bytes on the state folder's filesystem."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.dir).free

    def install(self, bundle: str | Path, *, update_id: str, budget_ms: float | None = None,
                meta: dict | None = None) -> dict:
        """Verify, install into the inactive slot, health-check, switch; returns the final status.

        A refused or unhealthy bundle ends in ``failed`` / ``rolled_back`` with ``reason`` (no exception):
        the previous slot keeps serving. Raises ``OtaError`` only when no update can start at all."""
        checked_id(update_id)
        meta, budget_ms = checked_meta(meta), checked_budget(budget_ms)
        with self._exclusive():
            self._writable()
            self._fire("install", update_id=update_id, source=str(Path(bundle).absolute()), budget_ms=budget_ms,
                       meta=meta, restore_to=self.slots.active(), target_slot=None, reason=None,
                       resumes={}, health=None)
            return self.status()

    def rollback(self) -> dict:
        """Go back to the previous slot (health-checked first); ``OtaError`` when there is none."""
        with self._exclusive():
            self._writable()
            active = self.slots.active()
            back = other(active)
            if active is None or self.slots.bundle(back) is None:
                raise OtaError("no previous slot to roll back to" + ("" if active else " (nothing installed yet)"),
                               hint="install another bundle first; see `edgepack-device ota-status`")
            self._fire("rollback", update_id=f"rollback-{int(time.time())}", source=None, budget_ms=None,
                       meta={}, restore_to=back, target_slot=None, reason="rollback requested", resumes={},
                       health=None)
            return self.status()

    def recover(self) -> dict:
        """At start: finish or undo the update a crash interrupted, then install ``inbox/*.edgepack``.

        With an unusable ``ota.json`` nothing is touched: the status says why and ``active()`` still
        answers from ``slots/active``."""
        with self._exclusive():
            if self.doc is None:
                return self.status()
            state = self.doc["state"]
            if state in RESTING:
                self._repoint()
            else:
                count = self.doc["resumes"].get(state, 0) + 1
                self.doc["resumes"][state] = count
                give_up = count > self.max_resumes and (state, "give_up") in TABLE.rows
                if give_up:
                    self.doc["reason"] = (f"loop guard: the update was interrupted {count} times in state "
                                          f"{state}; giving up")
                self._fire("give_up" if give_up else "interrupted")
        return self.process_inbox()

    def process_inbox(self) -> dict:
        """Install every ``inbox/*.edgepack`` (oldest first): installed ones are removed, refused ones renamed
        ``*.rejected``. The agent calls it every few seconds too, so a bundle dropped there while it runs is
        installed without a restart."""
        for path in self._inbox():
            self.install(path, update_id=inbox_id(path))
        return self.status()

    def status(self) -> dict:
        """The status message (``ota/status``): update_id, state, progress, reason, active_slot, model, ts, ..."""
        with self._lock:
            if self._stamp() != self._seen:      # another process (edgepack-device install) changed it
                self._read()
            active = self.slots.active()
            if self.doc is None:
                return {"update_id": None, "state": "unknown", "progress": None, "reason": self.problem,
                        "active_slot": active, "model": None, "ts": time.time(), "active_bundle": _str(self.active())}
            doc = self.doc
            record = doc["slots"].get(active) if active else None
            return {"update_id": doc["update_id"], "state": doc["state"], "progress": PROGRESS.get(doc["state"]),
                    "reason": doc["reason"], "active_slot": active,
                    "model": (record or {}).get("model"), "ts": time.time(), "target_slot": doc["target_slot"],
                    "previous_slot": other(active) if active and self.slots.bundle(other(active)) else None,
                    "health": doc["health"], "slots": doc["slots"], "active_bundle": _str(self.active())}

    # machinery ---------------------------------------------------------------------------
    def _fire(self, event: str, **fields) -> None:
        """Apply ``event`` (and every event its actions return) until the machine rests."""
        while event is not None:
            row = TABLE.step(self.doc["state"], event)
            self.doc.update(fields, state=row.next)
            fields = {}
            if row.next in RESTING and row.next != "idle":
                self.doc["history"].append({"update_id": self.doc["update_id"], "state": row.next,
                                            "reason": self.doc["reason"], "ts": time.time()})
            self._save()
            crash_point(row.next)
            event = ACTIONS[row.action](self)
            crash_point(row.next, after_action=True)
            self._publish()

    def _save(self) -> None:
        store.save(self.path, self.doc)
        self._seen = self._stamp()

    def _stamp(self):
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _publish(self) -> None:
        try:
            self.on_status(self.status())
        except Exception:  # noqa: BLE001 - reporting must never break an update
            pass

    def _read(self) -> None:
        self._seen = self._stamp()
        try:
            self.doc, self.problem = store.load(self.path), None
        except StateError as exc:
            self.doc, self.problem = None, str(exc)

    def _writable(self) -> None:
        """Before a change: a corrupt ota.json is kept aside (``ota.json.corrupt-<time>``) and a fresh one
        started from ``slots/``; one written by a newer runtime refuses the change."""
        if self.doc is not None:
            if not self.path.exists():
                self._save()
                crash_point("idle")
                crash_point("idle", after_action=True)      # idle has no action: both points are here
                self._publish()
            return
        try:
            self.doc, self.problem = store.load(self.path), None     # repaired by someone meanwhile
            return
        except NewerStateError as exc:
            raise OtaError(f"cannot update: {exc.message}", hint=exc.hint) from None
        except StateError:
            aside = self.path.with_name(f"ota.json.corrupt-{time.time_ns()}")
            os.replace(self.path, aside)
        self.doc = store.empty()
        self.doc["slots"] = {s: describe_slot(self.slots.bundle(s)) for s in ("a", "b")}
        self.doc["history"].append({"update_id": None, "state": "idle", "ts": time.time(),
                                    "reason": f"ota.json was unusable ({self.problem}); kept as {aside.name}"})
        self.problem = None
        self._save()

    def _repoint(self) -> None:
        """Resting, with no pointer or one at an empty slot, and exactly one slot holding a bundle: point at it.
        Also removes the temporaries a power cut may leave (``.ota.json.*.tmp``, ``slots/.active.*.tmp``)."""
        for stale in [*self.dir.glob(".ota.json.*.tmp"), *self.slots.root.glob(".active.*.tmp")]:
            stale.unlink(missing_ok=True)
        active = self.slots.active()
        if active is None or self.slots.bundle(active) is None:
            full = [s for s in ("a", "b") if self.slots.bundle(s) is not None]
            if len(full) == 1:
                self.slots.point(full[0])

    def inbox_waiting(self) -> bool:
        """Whether ``inbox/`` holds a bundle to install."""
        return bool(self._inbox())

    def _inbox(self) -> list[Path]:
        if not self.inbox_dir.is_dir():
            return []
        found = [p for p in self.inbox_dir.iterdir() if p.name.endswith(".edgepack") and not p.name.startswith(".")]
        return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))

    @contextmanager
    def _exclusive(self):
        with self._lock:
            if self._held:                        # re-entered by this thread (a callback calling back): held already
                yield
                return
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self._read()                      # another process may have changed the state meanwhile
                self._held = True
                yield
            finally:
                self._held = False
                os.close(fd)                      # closing releases the flock


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
