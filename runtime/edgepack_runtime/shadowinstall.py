"""Where a shadow lives on the device, how it gets there, and how it ends (stopped, or promoted).

A shadow bundle is kept in ``<state_dir>/shadow/`` (``bundle.edgepack`` or ``bundle/``, plus ``shadow.json``
written last): never in an A/B slot, so the rollback target stays what it was and nothing a restart reads to
choose the served model (``slots/active``) ever points at it. After a restart the agent serves its active slot
as always and starts the shadow again beside it.

``install(path, update_id=, budget_ms=, meta=)`` is what the flash receiver calls for an offer of mode
``shadow``: the same checks as an update (hashes, signature, device profile, disk space, health check on the
real backend), plus the candidate must take the serving model's inputs and give its outputs; it returns the
status published on ``ota/status`` (state ``shadowing``, or ``failed`` with ``reason``: nothing changed).
``stop(reason)`` removes it; ``promote()`` installs it through the Updater's normal path (verify, inactive slot,
health check, switch), then removes it. A normal update that installs the same bundle also ends the shadow.
Events: ``shadow_started``, ``shadow_stopped``, ``shadow_promote_started``, ``shadow_promoted``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
from pathlib import Path

from .commands import answer_then_run
from .errors import EdgepackError
from .ota import health
from .ota.errors import OtaError
from .ota.slots import Slots
from .atomic import write_atomic
from .ota.verify import verify
from .payload import BadCommand
from .shadow import Shadow, open_lowered

log = logging.getLogger("edgepack_runtime.shadow")
FOLDER, DOC = "shadow", "shadow.json"


def incompatible(serving: dict, candidate: dict) -> str | None:
    """Why the ``candidate`` manifest cannot shadow the ``serving`` one (None: it can)."""
    sig = lambda specs: [(s["name"], list(s["shape"]), s["dtype"]) for s in specs]  # noqa: E731
    if sig(serving["inputs"]) != sig(candidate["inputs"]):
        return (f"the candidate takes inputs {sig(candidate['inputs'])}, the serving model {sig(serving['inputs'])}; "
                "a shadow must take the same inputs")
    theirs = {s["name"]: list(s["shape"]) for s in candidate["outputs"]}
    for s in serving["outputs"]:
        if theirs.get(s["name"]) != list(s["shape"]):
            return (f"the serving model's output {s['name']!r} {list(s['shape'])} is not among the candidate's "
                    f"outputs {theirs}; a shadow must give the same outputs")
    return None


class ShadowInstaller:
    """The shadow of one agent running from a state folder; see the module docstring."""

    def __init__(self, agent, updater, conf: dict):
        self.agent, self.updater, self.conf = agent, updater, conf
        self.root = Path(updater.dir)
        self.store = Slots(self.root)            # its atomic copy, with "shadow" as the slot name: <state>/shadow/
        self.doc_path = self.root / FOLDER / DOC
        self.promoting = False
        self._lock = threading.RLock()

    # install ------------------------------------------------------------------------------------
    def install(self, path, *, update_id: str, budget_ms: float | None = None, meta: dict | None = None) -> dict:
        """Check the bundle at ``path`` as an update would be checked, then run it as the shadow (see module doc)."""
        meta = meta or {}
        share = meta.get("shadow_share")
        share = float(self.conf.get("shadow_share", 0.1) if share is None else share)
        up, model = self.updater, meta.get("model")
        with self._lock:
            try:
                info = verify(Path(path), trust_keys=up.trust_keys, profile=up.profile, free=up.free_bytes())
                model = info["model"]
                from .bundle import Bundle
                bundle = Bundle.open(path)
                why = incompatible(self.agent.rt.bundle.manifest, bundle.manifest)
                if why:
                    raise OtaError(why)
                budget = budget_ms if budget_ms is not None else up.health_budget_ms
                report = health.check(bundle, budget_ms=budget, backend=up.backend,
                                      targets=health.suitable_targets(bundle.manifest, up.profile))
                if not report["passed"]:
                    raise OtaError(f"health check failed: {report['reason']}")
            except (EdgepackError, OSError) as exc:
                return self._status(update_id, "failed", f"shadow refused: {exc}; nothing changed", model)
            if self.agent.shadow is not None or self.doc_path.parent.exists():
                self.stop(f"replaced by shadow {update_id}")
            try:
                self.store.write(FOLDER, Path(path))
                doc = {"format": 1, "update_id": update_id, "model": model, "share": share,
                       "installed": time.time(), "health": report}
                write_atomic(self.doc_path, json.dumps(doc).encode())
                self._start(doc)
            except (EdgepackError, OSError) as exc:
                self._clear()
                return self._status(update_id, "failed", f"shadow could not start: {exc}; nothing changed", model)
            return self._status(update_id, "shadowing", None, model, health=report, shadow_share=share)

    def _status(self, update_id: str, state: str, reason: str | None, model, **extra) -> dict:
        active = self.updater.status().get("active_slot")
        return {"update_id": update_id, "state": state, "mode": "shadow", "progress": None, "reason": reason,
                "model": model, "active_slot": active, "ts": time.time(), **extra}

    def _start(self, doc: dict) -> Shadow:
        """Load the installed shadow bundle and run it beside the serving model."""
        from .runtime import Runtime
        from .signing import open_verified
        bundle = open_verified(self.store.bundle(FOLDER), self.conf.get("trust_keys") or ())[0]
        why = incompatible(self.agent.rt.bundle.manifest, bundle.manifest)
        if why:
            raise OtaError(why)
        nice = int(self.conf.get("shadow_nice", 19))
        rt = open_lowered(lambda: Runtime.open(bundle, backend=self.conf.get("backend"),
                                               num_threads=self.conf.get("threads")), nice)
        m = bundle.manifest["model"]
        info = {"update_id": doc["update_id"], "model": m["name"], "version": m["version"],
                "bundle_sha256": hashlib.sha256(bundle.manifest_bytes).hexdigest(), "backend": rt.backend_name}
        shadow = Shadow(rt, share=float(doc["share"]), queue_size=int(self.conf.get("shadow_queue", 8)), info=info)
        sup = self.agent.supervisor
        sup.spawn("edgepack-shadow", lambda: shadow.work(self.agent._stop, sup.beat, self._check_served, nice=nice),
                  shadow.stopped)
        self.agent.shadow = shadow
        self._event({"type": "shadow_started", **info, "share": shadow.share})
        return shadow

    def resume(self) -> None:
        """At agent start: run the installed shadow again (as a shadow), or clear leftovers of a broken one."""
        if not self.doc_path.parent.exists():
            return
        try:
            doc = json.loads(self.doc_path.read_text())
            if self.store.bundle(FOLDER) is None or not isinstance(doc, dict):
                raise OtaError("the shadow folder is incomplete")
            self._start(doc)
        except (EdgepackError, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("shadow not resumed: %s", exc)
            self._clear()
            self._event({"type": "shadow_stopped", "stopped": True, "promoted": False, "update_id": None,
                         "reason": f"the installed shadow could not start again: {exc}; it was removed"})

    # the end of a shadow ------------------------------------------------------------------------
    def stop(self, reason: str, *, publish: bool = True, promoted: bool = False) -> dict:
        """Stop and remove the shadow; returns the ``shadow_stopped`` event (published when ``publish``)."""
        with self._lock:
            shadow, self.agent.shadow = self.agent.shadow, None
            if shadow is not None:
                shadow.stop()
            existed = self._clear()
        event = {"type": "shadow_stopped", "stopped": shadow is not None or existed, "promoted": promoted,
                 "reason": reason if shadow is not None or existed else "no shadow was running",
                 "update_id": shadow.info.get("update_id") if shadow else None,
                 "total": shadow.block(reset=False)["total"] if shadow else None}
        if event["stopped"] and self.agent.sink is not None:      # ota/status no longer says "shadowing"
            self.agent.sink.publish("ota/status", self.updater.status(), retain=True)
        if publish:
            self._event(event)
        return event

    def _clear(self) -> bool:
        folder = self.doc_path.parent
        if not folder.exists():
            return False
        self.doc_path.unlink(missing_ok=True)                     # first: a half-removed shadow is not resumed
        shutil.rmtree(folder, ignore_errors=True)
        return True

    def _check_served(self) -> None:
        """On the shadow's thread, about once a second: a normal update installed this very bundle: done."""
        shadow = self.agent.shadow
        if shadow is not None and not self.promoting and \
                self.agent.telemetry.static.get("bundle_sha256") == shadow.info["bundle_sha256"]:
            self.stop("the candidate serves now (an update installed the same bundle)", promoted=True)

    def promote(self, request_id: str | None = None) -> None:
        """Install the shadow through the Updater in the background; publishes ``shadow_promote_started`` first,
        then ``shadow_promoted`` (``state`` committed / rolled_back / failed, ``reason``) when it ends."""
        with self._lock:
            shadow = self.agent.shadow
            if shadow is None:
                raise BadCommand("no shadow runs on this device; start one with `edgepack flash --shadow`")
            if self.promoting:
                raise BadCommand("a promotion of the shadow is already running")
            self.promoting = True
        try:
            answer_then_run(self.agent.sink, {"type": "shadow_promote_started", "request_id": request_id,
                                              "update_id": shadow.info["update_id"]},
                            lambda: self._promote(shadow, request_id), name="edgepack-shadow-promote")
        except BaseException:
            self.promoting = False                # nothing started: a later promote may run
            raise

    def _promote(self, shadow: Shadow, request_id: str | None) -> None:
        uid = f"promote-{shadow.info['update_id']}"[:64]
        try:
            st = self.updater.install(self.store.bundle(FOLDER), update_id=uid,
                                      meta={"via": "shadow", "shadow_update_id": shadow.info["update_id"]})
            if st.get("state") == "committed":
                self.stop("promoted: the candidate serves now", promoted=True)
        except Exception as exc:  # noqa: BLE001 - told in the answer; the shadow keeps running
            st = {"state": "failed", "reason": f"{type(exc).__name__}: {exc}"}
        finally:
            self.promoting = False
        self._event({"type": "shadow_promoted", "request_id": request_id, "update_id": uid,
                     "state": st.get("state"), "reason": st.get("reason"), "status": st})

    def _event(self, body: dict) -> None:
        if self.agent.sink is not None:
            self.agent.sink.publish("events", body)


def attach_shadow(agent, updater, conf: dict) -> ShadowInstaller:
    """Give ``agent`` (built, not started, with its Updater) a shadow installer: flash offers of mode shadow go
    to it, the device announces ``shadow`` support, and a shadow installed before a restart runs again."""
    installer = ShadowInstaller(agent, updater, conf)
    agent.shadows = installer
    receiver = getattr(agent, "receiver", None)
    if receiver is not None:
        receiver.shadow = installer.install
    if isinstance(getattr(agent.sink, "announce", None), dict):
        agent.sink.announce["shadow"] = 1
    installer.resume()
    return installer
