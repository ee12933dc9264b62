"""Device profiles: data files (``devices/*.toml``) describing device classes that drive ``build``.

A profile names the targets a device class runs (preferred first), the precisions worth building, its
accelerator (kind, HTP arch, Neural Engine generation), OS and memory, and ``[precision]``: the precision
each of its targets prefers. ``--target`` accepts a target name or a profile name; a profile expands to its
targets (``edgepack.plan``).
"""
from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from . import targets as table
from .errors import EdgepackError


def devices_dir() -> Path:
    env = os.environ.get("EDGEPACK_DEVICES")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "devices"


@lru_cache(maxsize=None)
def profiles() -> dict[str, dict]:
    """All profiles by name, validated."""
    out = {}
    for path in sorted(devices_dir().glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise EdgepackError(f"device profile {path} is not valid TOML: {exc}") from exc
        for key in ("name", "description", "arch", "targets", "memory_mb"):
            if key not in data:
                raise EdgepackError(f"device profile {path} lacks '{key}'")
        unknown = [t for t in data["targets"] if not table.known(t)]
        if unknown:
            raise EdgepackError(f"device profile {path} names unknown targets {unknown}; known: "
                                f"{', '.join(list(table.TABLE) + list(table.PLANNED))}")
        _check_precisions(path, data)
        out[data["name"]] = data
    return out


def _check_precisions(path: Path, data: dict) -> None:
    """``[precision]`` maps a target of the profile to the precision it prefers (checked for built targets)."""
    prefs = data.get("precision", {})
    for target, precision in prefs.items():
        if target not in data["targets"]:
            raise EdgepackError(f"device profile {path} prefers a precision for '{target}', which is not one of "
                                f"its targets {data['targets']}")
        if target in table.TABLE and precision not in table.get(target).precisions:
            raise EdgepackError(f"device profile {path}: target '{target}' has no precision '{precision}'",
                                hint=f"its precisions: {', '.join(table.get(target).precisions)}")


def suited_profiles(target) -> list[str]:
    """Profiles that can run a ``target`` (a ``targets.base.Target``): every profile for a portable target,
    else the profiles naming it."""
    return sorted(n for n, p in profiles().items() if target.portable or target.name in p["targets"])
