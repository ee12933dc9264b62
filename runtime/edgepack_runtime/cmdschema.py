"""Command argument schemas declared as data: ``{field: Arg(kind, required, bounds, choices)}``.

``validate(schema, body)`` checks a parsed payload against one and raises ``BadCommand`` (and nothing else)
listing every problem at once, each naming its field: unknown fields, missing ones, wrong kinds, values out
of bounds or not among the choices.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .payload import BadCommand, show

KINDS = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true or false",
         "object": "a JSON object", "array": "a JSON array", "any": "any JSON value"}


@dataclass(frozen=True)
class Arg:
    """One field of a command's arguments: its JSON kind, whether it must be given, and its bounds.

    ``gt``/``ge``/``lt``/``le`` bound numbers, ``max_len`` bounds strings and arrays, ``choices`` lists the
    allowed values; ``default`` fills an optional field left out."""
    kind: str
    required: bool = False
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple = ()
    max_len: int | None = None
    default: object = None
    doc: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Arg kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.max_len is not None and self.kind not in ("string", "array"):
            raise ValueError("Arg max_len bounds strings and arrays only")
        if {self.gt, self.ge, self.lt, self.le} != {None} and self.kind not in ("number", "integer"):
            raise ValueError("Arg gt/ge/lt/le bound numbers only")

    def describe(self) -> str:
        """The kind and constraints in words, e.g. ``a number in (0, 86400]``."""
        words = KINDS[self.kind]
        if {self.gt, self.ge, self.lt, self.le} != {None}:
            low = f"({self.gt:g}" if self.gt is not None else f"[{self.ge:g}" if self.ge is not None else "(-inf"
            high = f"{self.lt:g})" if self.lt is not None else f"{self.le:g}]" if self.le is not None else "inf)"
            words += f" in {low}, {high}"
        if self.choices:
            words += " among " + ", ".join(json.dumps(c) for c in self.choices)
        if self.max_len is not None:
            words += f" of at most {self.max_len} items" if self.kind == "array" else \
                f" of at most {self.max_len} characters"
        return words

    def problem(self, value) -> str | None:
        """What is wrong with ``value`` in words, or None when it is acceptable."""
        if not _is_kind(self.kind, value):
            return f"must be {self.describe()}, not {show(value)}"
        out_of_bounds = ((self.gt is not None and not value > self.gt) or (self.ge is not None and not value >= self.ge)
                         or (self.lt is not None and not value < self.lt) or (self.le is not None and not value <= self.le))
        too_long = self.max_len is not None and len(value) > self.max_len
        if out_of_bounds or too_long or (self.choices and value not in self.choices):
            return f"must be {self.describe()}, not {show(value)}"
        return None


def _is_kind(kind: str, value) -> bool:
    if isinstance(value, bool):
        return kind in ("boolean", "any")
    types = {"number": (int, float), "integer": int, "string": str, "object": dict, "array": list, "any": object,
             "boolean": bool}[kind]
    return isinstance(value, types)


def validate(schema: dict[str, Arg], body: dict) -> dict:
    """``body`` checked against ``schema``, defaults filled in; every problem listed in one ``BadCommand``."""
    if not isinstance(body, dict):
        raise BadCommand(f"arguments must be a JSON object, not {show(body)}")
    fields = sorted(set(body) - set(schema), key=str)
    problems = [f"unknown field{'s' if len(fields) > 1 else ''} {', '.join(repr(f) for f in fields)} "
                f"(known: {', '.join(sorted(schema)) or 'none'})"] if fields else []
    args = {}
    for name, arg in schema.items():
        if name not in body:
            if arg.required:
                fields.append(name)
                problems.append(f"missing field {name!r} ({arg.describe()})")
            elif arg.default is not None:
                args[name] = arg.default
            continue
        problem = arg.problem(body[name])
        if problem:
            fields.append(name)
            problems.append(f"field {name!r} {problem}")
        args[name] = body[name]
    if problems:
        raise BadCommand("; ".join(problems), fields)
    return args


