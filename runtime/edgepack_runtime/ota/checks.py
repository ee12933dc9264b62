"""Checks of what callers hand the Updater (update ids, meta, budgets) and small helpers of the state folder."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import OtaError

_UPDATE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def checked_id(update_id: str) -> str:
    if not isinstance(update_id, str) or not _UPDATE_ID.fullmatch(update_id):
        raise OtaError(f"update id {str(update_id)[:80]!r} must be 1-64 letters, digits, '.', '_' or '-'",
                       hint="use a short id such as a timestamp or a hash prefix")
    return update_id


def checked_meta(meta) -> dict:
    """``meta`` as plain JSON (it is persisted in ota.json); OtaError when it cannot be."""
    try:
        return json.loads(json.dumps(dict(meta or {}), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise OtaError(f"update meta must be a JSON object of finite numbers, strings, lists, objects: {exc}") from None


def checked_budget(budget_ms):
    if budget_ms is None:
        return None
    if isinstance(budget_ms, bool) or not isinstance(budget_ms, (int, float)) or not 0 <= budget_ms < float("inf"):
        raise OtaError(f"budget_ms must be a finite number >= 0, not {budget_ms!r}")
    return float(budget_ms)


def inbox_id(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.name[: -len(".edgepack")])[:48] or "bundle"
    return f"inbox-{stem.lstrip('.-_') or 'bundle'}"


def describe_slot(path: Path | None) -> dict | None:
    """The slot record of a bundle found on disk without a state document (model name and version)."""
    if path is None:
        return None
    from ..bundle import Bundle
    try:
        model = Bundle.open(path).manifest["model"]
    except Exception:  # noqa: BLE001 - an unreadable slot is described as such, never deleted
        return {"model": None, "update_id": None, "note": "unreadable"}
    return {"model": {"name": model["name"], "version": model["version"]}, "update_id": None}
