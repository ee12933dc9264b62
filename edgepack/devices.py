"""Device profiles: data files (``devices/*.toml``) describing device classes that drive ``build``.

A profile names the targets a device class runs (preferred first), the precisions worth building, its
accelerator (kind, HTP arch, Neural Engine generation), OS and memory. ``--target`` accepts a target name or
a profile name; a profile expands to its targets.
"""
from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

from .errors import EdgepackError

TARGETS = ("cpu", "onnx", "coreml", "qualcomm")
AVAILABLE_TARGETS = ("cpu", "onnx")   # built by this version


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
        unknown = [t for t in data["targets"] if t not in TARGETS]
        if unknown:
            raise EdgepackError(f"device profile {path} names unknown targets {unknown}; known: {list(TARGETS)}")
        out[data["name"]] = data
    return out


def resolve_targets(names: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Expand target/profile names to (targets to build, profiles named, targets skipped as unavailable)."""
    targets: list[str] = []
    named: list[str] = []
    skipped: list[str] = []
    known = profiles()
    for name in names:
        if name in TARGETS:
            wanted = [name]
        elif name in known:
            named.append(name)
            wanted = list(known[name]["targets"])
        else:
            raise EdgepackError(f"unknown target or device profile '{name}'",
                                hint=f"targets: {', '.join(TARGETS)}; profiles: {', '.join(known)}")
        for t in wanted:
            if t not in AVAILABLE_TARGETS:
                skipped.append(t)
            elif t not in targets:
                targets.append(t)
    if not targets:
        raise EdgepackError(f"none of the requested targets ({', '.join(skipped)}) can be built by this version",
                            hint="build with --target cpu for now")
    return targets, named, sorted(set(skipped))


def suited_profiles(target: str) -> list[str]:
    """Profiles that can run a bundle's ``target`` entry."""
    if target in ("cpu", "onnx"):
        return sorted(profiles())
    return sorted(n for n, p in profiles().items() if target in p["targets"])
