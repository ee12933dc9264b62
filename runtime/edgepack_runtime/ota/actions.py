"""The actions named in the OTA table. Each runs after its row's next state was persisted, may update the
document (``u.doc``), and returns the event to fire next (None: the machine rests).

Every action is idempotent, so ``recover()`` may run it again after a crash in the middle of it.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ..errors import EdgepackError
from . import health
from .slots import other
from .verify import verify


def act_none(u) -> None:
    return None


def act_verify(u) -> str:
    doc = u.doc
    try:
        if Path(doc["source"] or "").absolute().is_relative_to(u.slots.root.absolute()):
            raise OSError(f"{doc['source']} is inside the slots folder; copy the bundle elsewhere to install it")
        info = verify(Path(doc["source"] or ""), trust_keys=u.trust_keys, profile=u.profile, free=u.free_bytes())
    except (EdgepackError, OSError) as exc:
        doc["reason"] = f"refused: {exc}"
        return "refused"
    doc["meta"]["incoming"] = info
    active = u.slots.active()
    doc["target_slot"] = other(active)
    return "verified"


def act_copy_to_slot(u) -> str:
    doc, slot = u.doc, u.doc["target_slot"]
    try:
        if slot == u.slots.active():
            raise OSError(f"slot {slot} became active meanwhile")
        u.slots.write(slot, Path(doc["source"]))
    except (OSError, ValueError) as exc:
        doc["reason"] = f"copy into slot {slot} failed: {exc}"
        return "error"
    incoming = doc["meta"].get("incoming") or {}
    doc["slots"][slot] = {"model": incoming.get("model"), "update_id": doc["update_id"],
                          "signature": incoming.get("signature"), "installed": time.time()}
    return "installed"


def act_health_check(u) -> str:
    doc, slot = u.doc, u.doc["target_slot"]
    path = u.slots.bundle(slot)
    if path is None:
        doc["reason"] = f"slot {slot} holds no bundle"
        return "unhealthy"
    budget = doc["budget_ms"] if doc["budget_ms"] is not None else u.health_budget_ms
    from ..bundle import Bundle
    try:
        bundle = Bundle.open(path)                 # the copy in the slot, every member's hash checked again
    except EdgepackError as exc:
        doc["reason"] = f"health check: the installed copy is unreadable: {exc}"
        return "unhealthy"
    targets = health.suitable_targets(bundle.manifest, u.profile)
    report = health.check(bundle, budget_ms=budget, backend=u.backend, targets=targets)
    doc["health"] = report
    if not report["passed"]:
        doc["reason"] = f"health check failed: {report['reason']}"
        return "unhealthy"
    return "healthy"


def act_switch(u) -> str:
    doc, slot = u.doc, u.doc["target_slot"]
    u.slots.point(slot)
    try:
        u.on_switch(u.slots.bundle(slot))
    except Exception as exc:  # noqa: BLE001 - whatever the agent hit, the old slot must come back
        doc["reason"] = f"the agent could not switch to slot {slot}: {type(exc).__name__}: {exc}"
        return "switch_failed"
    return "switched"


def act_commit(u) -> None:
    doc = u.doc
    doc["reason"], doc["resumes"] = None, {}
    _consume_source(u, ok=True)
    return None


def act_restore_previous(u) -> str:
    """Point back at ``restore_to`` (health-checking it first when it is not the active slot)."""
    doc = u.doc
    back, active = doc["restore_to"], u.slots.active()
    failed = doc["target_slot"] if doc["target_slot"] != back else None
    if back is not None and back != active:
        report = health.check(u.slots.bundle(back), budget_ms=None, backend=u.backend)
        if not report["passed"]:
            doc["reason"] = (doc["reason"] + "; " if doc["reason"] else "") + \
                f"the previous slot {back} failed its check too ({report['reason']}); slot {active} keeps serving"
            return "restore_failed"
        u.slots.point(back)
        try:
            u.on_switch(u.slots.bundle(back))
        except Exception as exc:  # noqa: BLE001
            doc["reason"] = f"the agent could not load slot {back}: {exc}"
    elif back is None and active == failed and failed is not None:
        u.slots.unpoint()                      # first install ever, and it failed: serve nothing rather than it
    if failed is not None and failed != u.slots.active() and doc["update_id"] and \
            (doc["slots"].get(failed) or {}).get("update_id") == doc["update_id"]:
        u.slots.clear(failed)                  # the bundle that failed: provably not serving, never a rollback target
        doc["slots"][failed] = None
    _consume_source(u, ok=False)
    return "restored"


def act_discard_staging(u) -> None:
    _consume_source(u, ok=False)
    return None


def act_clear_slot(u) -> None:
    doc, slot = u.doc, u.doc["target_slot"]
    if slot is not None and slot != u.slots.active():
        u.slots.clear(slot)
        doc["slots"][slot] = None
    _consume_source(u, ok=False)
    return None


def _consume_source(u, ok: bool) -> None:
    """A staged download is deleted; an inbox bundle is deleted when installed, renamed ``*.rejected`` when
    not (so it is not retried at every start, and nothing is lost); any other source is left alone."""
    src = u.doc["source"]
    if not src:
        return
    path = Path(src)
    try:
        if path.parent == u.staging_dir:
            path.unlink(missing_ok=True)
            for extra in path.parent.glob(path.name + ".*"):
                extra.unlink(missing_ok=True)
        elif path.parent == u.inbox_dir and path.exists():
            if ok:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            else:
                os.replace(path, path.with_name(path.name + ".rejected"))
    except OSError:
        pass


ACTIONS = {name[4:]: fn for name, fn in globals().items() if name.startswith("act_")}
