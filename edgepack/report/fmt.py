"""Escaping and number formatting shared by the report sections and charts.

Every helper returns HTML-safe text that is also valid inside inline SVG (XML): strings go
through :func:`esc`, which uses only XML-compatible entities and drops characters XML forbids.
Missing values render as an em dash.
"""
from __future__ import annotations

import html
import math
import numbers
import re
from typing import Any

DASH = "—"

# Characters that are not allowed in XML 1.0 documents (control chars, lone surrogates, non-chars).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def esc(value: Any) -> str:
    """``value`` as escaped text; None and blank strings become an em dash."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DASH
    return html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)


def code(value: Any) -> str:
    """``value`` in a ``<code>`` element, or a bare em dash when missing."""
    out = esc(value)
    return out if out == DASH else f"<code>{out}</code>"


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else []


def is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def num(value: Any) -> float | None:
    """``value`` as a float (infinities kept), or None when missing, non-numeric or NaN."""
    if not is_real(value):
        return None
    v = float(value)
    return None if math.isnan(v) else v


def _real(value: Any, body) -> str:
    """Format a real number with ``body(float)``; NaN/inf spelled out; anything else escaped."""
    if not is_real(value):
        return esc(value)
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return body(v)


def fixed(value: Any, digits: int, suffix: str = "") -> str:
    out = _real(value, lambda v: f"{v:,.{digits}f}")
    return out + suffix if is_real(value) and not math.isnan(float(value)) else out


def cosine(value: Any) -> str:
    return fixed(value, 6)


def db(value: Any) -> str:
    return fixed(value, 1, " dB")


def ms(value: Any) -> str:
    return fixed(value, 2, " ms")


def seconds(value: Any) -> str:
    return fixed(value, 2, " s")


def count(value: Any) -> str:
    return fixed(value, 0)


def sig(value: Any, digits: int = 3) -> str:
    """Compact general format for error magnitudes (0.05, 1.2e-06)."""
    return _real(value, lambda v: f"{v:.{digits}g}")


def pct(value: Any) -> str:
    """A fraction in [0, 1] as a percentage."""
    return _real(value, lambda v: f"{v * 100:.1f}%")


def ratio(value: Any) -> str:
    return _real(value, lambda v: f"{v:,.2f}×")


def cost(value: Any) -> str:
    """A multiplicative cost (1.08) as ``1.08× (+8.0%)``."""
    return _real(value, lambda v: f"{v:,.2f}× ({(v - 1) * 100:+.1f}%)")


def size(value: Any) -> str:
    """A byte count as B/KB/MB/GB (1024-based), the exact count in a tooltip."""
    v = num(value)
    if v is None or v < 0 or math.isinf(v):
        return esc(value)
    for unit, scale, digits in (("GB", 1024 ** 3, 2), ("MB", 1024 ** 2, 2), ("KB", 1024, 1)):
        if v >= scale:
            return f'<span title="{v:,.0f} bytes">{v / scale:,.{digits}f} {unit}</span>'
    return f"{v:,.0f} B"


def size_vs(value: Any, reference: Any, label: str = "fp32") -> str:
    """``size(value)`` followed by its ratio to ``reference`` when both are known."""
    out = size(value)
    v, r = num(value), num(reference)
    if v is not None and r and r > 0 and not math.isinf(r):
        out += f' <span class="muted">({v / r:.2f}× {esc(label)})</span>'
    return out


def shape(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join("?" if d is None else esc(d) for d in value) + "]"
    return esc(value)


def show(value: Any) -> str:
    """Generic display of an arbitrary JSON-ish value."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_real(value):
        return _real(value, lambda v: f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:g}")
    if isinstance(value, (list, tuple)):
        return ", ".join(show(v) for v in value) if value else DASH
    if isinstance(value, dict):
        return ", ".join(f"{esc(k)}={show(v)}" for k, v in value.items()) if value else DASH
    return esc(value)


def badge(passed: Any, *, missing: str = "not verified") -> str:
    if passed is True:
        return '<span class="badge pass">PASS</span>'
    if passed is False:
        return '<span class="badge fail">FAIL</span>'
    return f'<span class="badge none">{esc(missing)}</span>'


def short(text: Any, limit: int) -> str:
    """Escaped ``text`` cut to ``limit`` characters (ellipsis added)."""
    s = "" if text is None else str(text)
    return esc(s if len(s) <= limit else s[: limit - 1] + "…")


def worst(items: Any, key: str, *, lowest: bool = True) -> float | None:
    """The lowest (or highest) numeric ``key`` across a dict/list of dicts; NaN wins (it is a failure)."""
    rows = items.values() if isinstance(items, dict) else as_list(items)
    vals = [float(v) for r in rows if is_real(v := as_dict(r).get(key))]
    if not vals:
        return None
    if any(math.isnan(v) for v in vals):
        return math.nan
    return min(vals) if lowest else max(vals)
