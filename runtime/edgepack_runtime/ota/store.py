"""``<state_dir>/ota.json``: the persisted OTA state, versioned JSON written atomically.

Document (``"format": 1``; a reader refuses another major format, and keeps keys it does not know)::

    {"format": 1, "state": "<a state of table.STATES>", "update_id": str|null, "source": path|null,
     "target_slot": "a"|"b"|null, "restore_to": "a"|"b"|null, "budget_ms": number|null,
     "reason": str|null, "resumes": {state: int}, "health": {...}|null, "meta": {...},
     "slots": {"a": {"model": {"name", "version"}, "sha256", "update_id", "installed"}|null, "b": ...},
     "history": [{"update_id", "state", "reason", "ts"}, ...], "ts": float}

``parse`` treats the bytes as untrusted: size and nesting are bounded before ``json.loads``, every field's
type is checked, and any problem is one ``StateError`` saying what is wrong and what to do. ``save`` writes a
temporary file in the same folder, fsyncs it, renames it over ``ota.json`` and fsyncs the folder, so a
power cut leaves the old document or the new one, never a mix.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from ..atomic import write_atomic
from ..payload import too_deep
from .errors import NewerStateError, StateError
from .table import STATES

FORMAT = 1
MAX_BYTES = 1 << 20
MAX_DEPTH = 16
HISTORY = 20
SLOTS = ("a", "b")
_FIX = "move ota.json aside (the device keeps serving slots/active) or reinstall a bundle"
_OPTIONAL = {"update_id": str, "source": str, "target_slot": str, "restore_to": str, "reason": str,
             "budget_ms": (int, float), "health": dict, "ts": (int, float)}


def empty() -> dict:
    """The document of a device that never installed anything."""
    return {"format": FORMAT, "state": "idle", "update_id": None, "source": None, "target_slot": None,
            "restore_to": None, "budget_ms": None, "reason": None, "resumes": {}, "health": None, "meta": {},
            "slots": {"a": None, "b": None}, "history": [], "ts": time.time()}


def parse(raw: bytes) -> dict:
    """Validate ``raw`` (the bytes of ota.json) and return the document; ``StateError`` when it is unusable."""
    if len(raw) > MAX_BYTES:
        raise StateError(f"ota.json is {len(raw)} bytes, over the {MAX_BYTES}-byte limit", hint=_FIX)
    try:
        text = raw.decode("utf-8")
        if too_deep(text, MAX_DEPTH):
            raise StateError(f"ota.json nests deeper than {MAX_DEPTH} levels", hint=_FIX)
        doc = json.loads(text, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StateError(f"ota.json is corrupt (not UTF-8 JSON): {str(exc)[:200]}", hint=_FIX) from None
    if not isinstance(doc, dict):
        raise StateError("ota.json is corrupt: it must hold a JSON object", hint=_FIX)
    fmt = doc.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise StateError(f"ota.json has no integer 'format' (got {str(fmt)[:40]!r})", hint=_FIX)
    if fmt != FORMAT:
        raise NewerStateError(f"ota.json format {fmt} is not supported by this runtime (it reads format {FORMAT})",
                         hint="upgrade edgepack-runtime; the device keeps serving slots/active meanwhile")
    return _checked(doc)


def _no_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def _checked(doc: dict) -> dict:
    out = empty()
    out.update(doc)
    if out["state"] not in STATES:
        raise StateError(f"ota.json is corrupt: unknown state {str(out['state'])[:40]!r}", hint=_FIX)
    for key, kind in _OPTIONAL.items():
        value = out[key]
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise StateError(f"ota.json is corrupt: {key} must be {_name(kind)} or null", hint=_FIX)
    for key in ("target_slot", "restore_to"):
        if out[key] is not None and out[key] not in SLOTS:
            raise StateError(f"ota.json is corrupt: {key} must be 'a', 'b' or null", hint=_FIX)
    if out["budget_ms"] is not None and not (math.isfinite(out["budget_ms"]) and out["budget_ms"] >= 0):
        raise StateError("ota.json is corrupt: budget_ms must be a finite number >= 0", hint=_FIX)
    resumes = out["resumes"]
    if not isinstance(resumes, dict) or not all(
            k in STATES and isinstance(v, int) and not isinstance(v, bool) and v >= 0 for k, v in resumes.items()):
        raise StateError("ota.json is corrupt: resumes must map states to counts", hint=_FIX)
    slots = out["slots"]
    if not isinstance(slots, dict) or set(slots) - set(SLOTS) or not all(
            v is None or (isinstance(v, dict) and isinstance(v.get("model"), (dict, type(None)))) for v in slots.values()):
        raise StateError("ota.json is corrupt: slots must map 'a'/'b' to null or a slot record", hint=_FIX)
    out["slots"] = {s: slots.get(s) for s in SLOTS}
    if not isinstance(out["meta"], dict) or not isinstance(out["history"], list):
        raise StateError("ota.json is corrupt: meta must be an object and history a list", hint=_FIX)
    return out


def _name(kind) -> str:
    return "number" if isinstance(kind, tuple) else kind.__name__


def load(path: Path) -> dict:
    """The document at ``path`` (``empty()`` when there is none); ``StateError`` when it is unusable."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return empty()
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc}", hint="check the state folder's permissions") from None
    return parse(raw)


def dumps(doc: dict) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def save(path: Path, doc: dict) -> None:
    """Write ``doc`` to ``path`` atomically (tmp in the same folder, fsync, rename, fsync the folder)."""
    doc["history"] = doc["history"][-HISTORY:]
    doc["ts"] = time.time()
    write_atomic(Path(path), dumps(doc))
