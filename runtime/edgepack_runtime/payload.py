"""Command payloads parsed defensively: ``parse_payload(raw)`` turns the bytes of an MQTT ``cmd/<verb>``
message into a dict or raises ``BadCommand``, and nothing else.

Everything is bounded before ``json.loads`` runs: the size (``MAX_COMMAND_BYTES``) and the bracket nesting
(``MAX_DEPTH``, counted by a linear scan), so a hostile payload costs linear time and never reaches the
recursion limit. NaN, Infinity, numbers that overflow to infinity and duplicate keys are rejected; an
empty payload means ``{}``.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from itertools import accumulate

MAX_COMMAND_BYTES = 64 * 1024
MAX_DEPTH = 32


class BadCommand(ValueError):
    """A command the device refuses: the payload or its arguments. ``fields`` names the fields at fault."""
    event_type = "bad_command"

    def __init__(self, message: str, fields: list[str] | tuple = ()):
        super().__init__(message)
        self.fields = list(fields)

    def event(self, verb: str) -> dict:
        """The ``events`` message that answers the command."""
        return {"type": self.event_type, "verb": verb[:100], "error": str(self)[:500],
                "fields": [f[:100] for f in self.fields[:20]]}


def show(value) -> str:
    """A value in a message: its type and (shortened) JSON text."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


# A JSON string, or an unterminated one up to the end (json.loads sees the same): one linear pass, no
# restarts, whatever the quotes and backslashes.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting of JSON ``text`` outside strings, in linear time (no recursion)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def too_deep(text: str, max_depth: int) -> bool:
    """Whether JSON ``text`` nests brackets deeper than ``max_depth``: call it before ``json.loads``, whose
    recursion a deep document would exhaust. A count of opening brackets answers most texts at once."""
    return text.count("[") + text.count("{") > max_depth and nesting_depth(text) > max_depth


def _no_constant(name: str):
    raise BadCommand(f"payload is not JSON: {name} is not a JSON number")


def _unique(pairs: list) -> dict:
    seen = dict(pairs)
    if len(seen) != len(pairs):
        dup = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise BadCommand(f"duplicate field {dup[0]!r} in a JSON object", dup)
    return seen


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):          # 1e400 overflows to inf: not a number a handler can use
        raise BadCommand(f"payload has a number out of range: {text[:40]}")
    return value


def parse_payload(raw: bytes, *, max_bytes: int = MAX_COMMAND_BYTES, max_depth: int = MAX_DEPTH) -> dict:
    """The command arguments in ``raw``: a UTF-8 JSON object (empty payload = ``{}``), else ``BadCommand``."""
    if len(raw) > max_bytes:
        raise BadCommand(f"payload of {len(raw)} bytes exceeds {max_bytes}")
    if not raw:
        return {}
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadCommand(f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if too_deep(text, max_depth):                            # before json.loads
        raise BadCommand(f"payload nests deeper than {max_depth} levels")
    try:
        body = json.loads(text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique)
    except BadCommand:
        raise
    except (ValueError, RecursionError) as exc:   # JSONDecodeError, too many digits; depth was bounded already
        raise BadCommand(f"payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadCommand(f"payload must be a JSON object, not {show(body)}")
    return body


