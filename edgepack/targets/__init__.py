"""The table of targets: one line per target, ``name: "module:object"`` (the object is a ``base.Target``).

Adding a target is a new folder under ``edgepack/targets/`` plus one line here (or ``register`` at run
time). Targets load lazily, so listing them does not import every converter. ``PLANNED`` names targets
that device profiles may mention but this version does not build yet.
"""
from __future__ import annotations

import importlib

from ..errors import EdgepackError
from .base import Target

TABLE: dict[str, str] = {
    "cpu": "edgepack.targets.tflite.target:TARGET",
    "onnx": "edgepack.targets.onnx:TARGET",
    "coreml": "edgepack.targets.coreml.target:TARGET",
    "qualcomm": "edgepack.targets.qualcomm.target:TARGET",
}
PLANNED: dict[str, str] = {}
DEFAULT = "cpu"          # what --target means when it is not given
_loaded: dict[str, Target] = {}


def register(name: str, spec: str) -> None:
    """Add a table line at run time (``spec``: "module:object"); a name already present is an error."""
    if name in TABLE:
        raise ValueError(f"target {name!r} is already registered ({TABLE[name]})")
    TABLE[name] = spec


def unregister(name: str) -> None:
    TABLE.pop(name, None)
    _loaded.pop(name, None)


def get(name: str) -> Target:
    """The target called ``name`` (or one of its aliases); EdgepackError naming the known ones otherwise."""
    name = resolve_alias(name)
    if name not in TABLE:
        if name in PLANNED:
            raise EdgepackError(f"target '{name}' is not built by this version: {PLANNED[name]}",
                                hint=f"build one of: {', '.join(TABLE)}")
        raise EdgepackError(f"unknown target '{name}'", hint=f"targets: {', '.join(TABLE)}")
    if name not in _loaded:
        module, attr = TABLE[name].split(":")
        target = getattr(importlib.import_module(module), attr)
        _check(name, target)
        _loaded[name] = target
    return _loaded[name]


def names() -> list[str]:
    return list(TABLE)


def known(name: str) -> bool:
    """A target this version builds or plans to (what a device profile may name)."""
    return name in TABLE or name in PLANNED


def resolve_alias(name: str) -> str:
    """``tflite`` -> ``cpu``: aliases are declared by the targets (only loaded ones are consulted)."""
    if name in TABLE or name in PLANNED:
        return name
    for n in TABLE:
        if name in get(n).aliases:
            return n
    return name


def _check(name: str, target: Target) -> None:
    from edgepack_runtime.precisions import PRECISIONS
    if target.name != name:
        raise ValueError(f"table line {name!r} loads a target called {target.name!r}")
    unknown = [p for p in target.precisions if p not in PRECISIONS]
    if unknown or target.default_precision not in target.precisions:
        raise ValueError(f"target {name!r}: precisions {unknown} are not in edgepack_runtime.precisions, or "
                         f"its default {target.default_precision!r} is not one of its precisions")
