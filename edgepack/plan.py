"""What a build makes: ``--target`` names (targets or device profiles) and ``--precision`` become a list of
(target, precision, profiles) to convert.

``--precision`` forms:
    int8                    every requested target (an error naming the targets that do not offer it)
    cpu=int8,coreml=fp16    one by one
    int8,onnx=fp32          a value for all, with exceptions
A target not covered takes the precision its device profile prefers (``[precision]`` in the profile), else
its own default.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from edgepack_runtime.precisions import PRECISIONS

from . import targets as table
from .devices import profiles
from .errors import EdgepackError
from .targets.base import Target


@dataclass
class Planned:
    target: Target
    precision: str
    profiles: list[dict] = field(default_factory=list)   # profiles that asked for the target


@dataclass
class Plan:
    items: list[Planned]
    profiles_named: list[str]
    skipped: list[str]          # targets a profile names that this version does not build

    def warnings(self) -> list[str]:
        return [f"target '{t}' is not built by this version; skipped" for t in self.skipped]


def plan(names: list[str], precision: str | dict | None = None) -> Plan:
    """Expand target/profile ``names`` and assign each target its precision (EdgepackError on conflicts)."""
    order: list[str] = []
    asked_by: dict[str, list[dict]] = {}
    named, skipped = [], []
    known = profiles()
    for name in names:
        if name in known:
            named.append(name)
            wanted = list(known[name]["targets"])
        elif table.known(table.resolve_alias(name)):
            wanted = [table.resolve_alias(name)]
        else:
            raise EdgepackError(f"unknown target or device profile '{name}'",
                                hint=f"targets: {', '.join(table.names())}; profiles: {', '.join(known)}")
        for t in wanted:
            if t not in table.TABLE:
                if name == t:
                    table.get(t)            # raises: says it is not built by this version
                skipped.append(t)
                continue
            if t not in order:
                order.append(t)
            if name in known:
                asked_by.setdefault(t, []).append(known[name])
    if not order:
        raise EdgepackError(f"none of the requested targets ({', '.join(sorted(set(skipped)))}) can be built by "
                            f"this version", hint=f"build one of: {', '.join(table.names())}")
    for t in order:
        why = table.get(t).unavailable_reason()
        if why:
            raise EdgepackError(f"target '{t}' cannot be built on this host: {why}",
                                hint="install what it needs (pip install 'edgepack[all]' installs every target's "
                                     "dependencies), or build other targets")
    chosen = assign(order, parse_precision(precision), asked_by)
    items = [Planned(table.get(t), chosen[t], asked_by.get(t, [])) for t in order]
    return Plan(items, named, sorted(set(skipped)))


def parse_precision(spec: str | dict | None) -> dict[str, str]:
    """``"int8"`` -> {"*": "int8"}; ``"cpu=int8,coreml=fp16"`` -> {"cpu": "int8", "coreml": "fp16"}."""
    if spec is None or spec == "":
        return {}
    if isinstance(spec, dict):
        return dict(spec)
    out: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        key, sep, value = part.partition("=")
        key, value = ("*", key.strip()) if not sep else (table.resolve_alias(key.strip()), value.strip())
        if not value or not key:
            raise EdgepackError(f"--precision '{spec}': '{part}' is not PRECISION or TARGET=PRECISION",
                                hint="e.g. --precision int8 or --precision cpu=int8,coreml=fp16")
        if key in out:
            raise EdgepackError(f"--precision '{spec}' sets {'every target' if key == '*' else key} twice")
        out[key] = value
    return out


def assign(order: list[str], spec: dict[str, str], asked_by: dict[str, list[dict]]) -> dict[str, str]:
    for key, value in spec.items():
        if value not in PRECISIONS:
            raise EdgepackError(f"unknown precision '{value}'", hint=f"choose one of {', '.join(PRECISIONS)}")
        if key != "*" and key not in order:
            raise EdgepackError(f"--precision names target '{key}', which is not being built",
                                hint=f"targets of this build: {', '.join(order)}")
    chosen = {}
    for t in order:
        target = table.get(t)
        if t in spec:
            target.check_precision(spec[t])
            chosen[t] = spec[t]
        elif "*" in spec:
            chosen[t] = spec["*"]
        else:
            chosen[t] = _preferred(target, asked_by.get(t, []))
    lacking = [t for t in order if t not in spec and "*" in spec and spec["*"] not in table.get(t).precisions]
    if lacking:
        p = spec["*"]
        offered = "; ".join(f"{t}: {', '.join(table.get(t).precisions)}" for t in lacking)
        has = [t for t in order if p in table.get(t).precisions]
        raise EdgepackError(f"precision '{p}' is not offered by target(s) {', '.join(lacking)} ({offered})",
                            hint="set precisions one by one, e.g. --precision " +
                                 ",".join([f"{t}={p}" for t in has] + [f"{t}={table.get(t).default_precision}"
                                                                      for t in lacking]))
    return chosen


def _preferred(target: Target, asking: list[dict]) -> str:
    for profile in asking:
        p = profile.get("precision", {}).get(target.name)
        if p in target.precisions:
            return p
    return target.default_precision
