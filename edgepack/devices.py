"""Device profiles: data files (``devices/*.toml``) describing device classes that drive ``build``.

A profile names the targets a device class runs (preferred first), the precisions worth building, its
accelerator (kind, HTP arch, Neural Engine generation), OS and memory, and ``[precision]``: the precision
each of its targets prefers. Optional ``[power] watts`` and ``[cost] per_hour`` (``currency``) become the
agent's ``power_watts`` / ``cost_per_hour`` settings (``cost_settings``), so telemetry carries energy and
cost per 1,000 predictions. ``--target`` accepts a target name or a profile name; a profile expands to its
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
        _check_power_cost(path, data)
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


def _check_power_cost(path: Path, data: dict) -> None:
    """Optional ``[power] watts`` (average draw of the device, W) and ``[cost] per_hour`` (price of one
    device-hour, with an optional ``currency``): finite numbers within the agent's bounds."""
    for table_name, key, hi in (("power", "watts", 100_000.0), ("cost", "per_hour", 1_000_000.0)):
        section = data.get(table_name)
        if section is None:
            continue
        value = section.get(key) if isinstance(section, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= hi:
            raise EdgepackError(f"device profile {path}: [{table_name}] {key} must be a number in [0, {hi:g}], "
                                f"not {value!r}", hint=f"write e.g. [{table_name}] {key} = 6.5")
    currency = (data.get("cost") or {}).get("currency", "")
    if not isinstance(currency, str) or len(currency) > 8:
        raise EdgepackError(f"device profile {path}: [cost] currency must be a short name like \"USD\", not "
                            f"{currency!r}")


def cost_settings(profile: dict) -> dict:
    """The agent settings ``power_watts`` / ``cost_per_hour`` a profile states (only those it states)."""
    out = {}
    if "power" in profile:
        out["power_watts"] = float(profile["power"]["watts"])
    if "cost" in profile:
        out["cost_per_hour"] = float(profile["cost"]["per_hour"])
    return out


def suited_profiles(target) -> list[str]:
    """Profiles that can run a ``target`` (a ``targets.base.Target``): every profile for a portable target,
    else the profiles naming it."""
    return sorted(n for n, p in profiles().items() if target.portable or target.name in p["targets"])
