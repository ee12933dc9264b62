"""What the targets support, as data for ``edgepack ops`` and ``edgepack targets``."""
from __future__ import annotations

from edgepack_runtime.precisions import PRECISIONS

from ..errors import EdgepackError
from . import get, names


def support_rows(target: str) -> tuple[str, list[dict]]:
    """(target name, one row per registered converter) of a target's op registry."""
    t = get(target)
    registry = t.registry()
    if registry is None:
        with_registry = [n for n in names() if get(n).registry() is not None]
        raise EdgepackError(f"target '{t.name}' has no op table: {t.summary}",
                            hint=f"targets with one: {', '.join(with_registry)}")
    return t.name, [{"domain": e.domain or "ai.onnx", "op_type": e.op_type, "since": e.since, "notes": e.doc}
                    for e in registry.entries()]


def describe_targets() -> list[dict]:
    """Every target of the table: format, precisions (with their gates), default, availability here."""
    from . import PLANNED
    rows = []
    for name in names():
        t = get(name)
        why = t.unavailable_reason()
        rows.append({"name": t.name, "format": t.format, "summary": t.summary, "aliases": list(t.aliases),
                     "precisions": list(t.precisions), "default_precision": t.default_precision,
                     "gates": {p: PRECISIONS[p].gate.as_dict() for p in t.precisions},
                     "backend": t.backend, "op_table": t.registry() is not None,
                     "debugger": t.debug_precision, "available": why is None, "why_not": why,
                     "requires": [r.pip for r in t.requires]})
    for name, why in PLANNED.items():
        rows.append({"name": name, "format": None, "summary": why, "aliases": [], "precisions": [],
                     "default_precision": None, "gates": {}, "backend": None, "op_table": False,
                     "debugger": None, "available": False, "why_not": why, "requires": []})
    return rows
