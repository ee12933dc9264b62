"""What the web page shows, as data: the query (filters from the URL), the view (header, formatted rows,
per-device plot series) sent by ``/events``, and the SVG plots the server draws for the page without JS.

The view is the same for the first page and every server-sent event, so the page's script only copies text
(``textContent``, never HTML) and scales points; nothing from a device is ever interpreted as markup.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from html import escape
from urllib.parse import parse_qs

from edgepack_runtime.drift import Thresholds

from .columns import cells, columns_for, counters_line, state_word, totals

__all__ = ["BadQuery", "Query", "plot_svg", "view"]

MAX_TEXT = 256
PLOT_POINTS = 240                # newest points per series sent to the page
PSI_LIMIT = Thresholds().psi     # drawn as the dashed line of the drift plots
W, H, PAD = 320, 96, 14          # SVG viewBox of one plot; the page's script uses the same numbers
LINES = {"latency": (("p50", "p50_ms"), ("p95", "p95_ms")), "drift": (("psi", "drift_psi"),)}


class BadQuery(ValueError):
    """A query parameter the page cannot use (answered 400 with this text)."""


@dataclass(frozen=True)
class Query:
    """Filters and sizes from the URL (``?fleet=&model=&sort=&rows=&plots=&events=``); defaults from the CLI."""
    fleet: str | None = None
    model: str | None = None
    sort: str = "device"
    rows: int = 500          # table rows at most
    plots: int = 12          # devices with plots (the first ones in table order)
    events: int | None = None  # /events: end the stream after this many snapshots (None: endless)

    def parse(self, query: str, sort_keys) -> "Query":
        """This query with the URL's parameters applied; ``BadQuery`` says which one is wrong and why."""
        try:
            params = parse_qs(query, keep_blank_values=True, max_num_fields=20, strict_parsing=False)
        except ValueError as exc:
            raise BadQuery(f"bad query string: {exc}") from None
        q = self
        for name in ("fleet", "model"):
            if name in params:
                value = params[name][-1]
                if len(value) > MAX_TEXT:
                    raise BadQuery(f"{name} is longer than {MAX_TEXT} characters")
                q = replace(q, **{name: value or None})
        if params.get("sort", [""])[-1]:
            sort = params["sort"][-1]
            if sort.lstrip("-") not in sort_keys:
                raise BadQuery(f"cannot sort by {sort[:40]!r}; choose one of {', '.join(sort_keys)} "
                               "(a leading '-' sorts descending)")
            q = replace(q, sort=sort)
        for name, top in (("rows", 10_000), ("plots", 100), ("events", 100_000)):
            if params.get(name, [""])[-1]:
                text = params[name][-1]
                if not text.isdigit() or not 0 <= int(text) <= top:
                    raise BadQuery(f"{name} must be a whole number from 0 to {top}, not {text[:20]!r}")
                q = replace(q, **{name: int(text)})
        return q

    def params(self, **changes) -> dict:
        """The URL parameters of this query (with ``changes``), for links and forms."""
        q = replace(self, **changes)
        out = {"fleet": q.fleet, "model": q.model, "sort": q.sort}
        return {k: v for k, v in out.items() if v not in (None, "")}


def _points(state, row: dict, metric: str, now: float) -> list[list[float]]:
    pts = state.series(row["device"], metric, fleet=row["fleet"])[-PLOT_POINTS:]
    return [[round(t, 3), float(f"{v:.4g}")] for t, v in pts if math.isfinite(v)]


def view(state, q: Query, *, stats: dict | None = None, now: float | None = None) -> dict:
    """The page's data: title line, counters, columns, formatted rows and plot series (JSON-able)."""
    now = time.time() if now is None else now
    snap = state.snapshot(fleet=q.fleet, model=q.model, sort=q.sort)
    rows = snap["devices"]
    cols = columns_for(rows)
    shown = rows[:q.rows]
    out_rows = [{"key": f"{r['fleet']}/{r['device']}", "state": state_word(r.get("online")),
                 "alert": bool(r.get("drift_alerts")), "cells": cells(r, cols, now)} for r in shown]
    plots = [{"key": f"{r['fleet']}/{r['device']}", "device": r["device"], "fleet": r["fleet"],
              **{plot: {name: _points(state, r, metric, now) for name, metric in lines}
                 for plot, lines in LINES.items()}} for r in shown[:q.plots]]
    return {"ts": now, "counters": counters_line(snap), "totals": totals(snap), "link": link_line(stats),
            "columns": [list(c) for c in cols], "rows": out_rows, "more": len(rows) - len(shown),
            "plots": plots, "psi_limit": PSI_LIMIT}


def link_line(stats: dict | None) -> str:
    """``broker mqtt://... connected, 1,234 messages/min``: the ingest's own state, from ``Monitor.stats()``."""
    if not stats:
        return ""
    parts = [f"broker {stats['broker']}"] if stats.get("broker") else []
    if stats.get("connected") is not None:
        parts.append("connected" if stats["connected"] else "disconnected")
    history = stats.get("history")
    if history:
        parts.append(f"history {history.get('url') if isinstance(history, dict) else history}")
    return ", ".join(str(p) for p in parts)


def _scale(lines: dict, limit: float | None):
    pts = [p for series in lines.values() for p in series]
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    top = max([p[1] for p in pts] + ([limit * 1.2] if limit else [])) or 1.0
    span = (t1 - t0) or 1.0
    return (lambda t: PAD + (W - 2 * PAD) * (t - t0) / span), (lambda v: H - PAD - (H - 2 * PAD) * v / top), top, t1 - t0


def plot_svg(kind: str, lines: dict, *, limit: float | None = None) -> str:
    """One plot as SVG markup (``kind`` is ``latency`` or ``drift``; ``lines`` name -> [[ts, value], ...])."""
    head = (f'<svg class="plot {kind}" viewBox="0 0 {W} {H}" role="img" '
            f'aria-label="{escape(kind)} over time" data-drawn-by="server">')
    if not any(lines.values()):
        return head + f'<text x="{PAD}" y="{H // 2}">no {"drift windows" if kind == "drift" else "telemetry"} yet</text></svg>'
    x, y, top, span = _scale(lines, limit)
    body = [f'<text class="axis" x="{PAD}" y="{PAD - 3}">{escape(_fmt(top))}{" ms" if kind == "latency" else ""}</text>',
            f'<text class="axis" x="{W - PAD}" y="{H - 2}" text-anchor="end">last {escape(_span(span))}</text>']
    if limit:
        body.append(f'<line class="limit" x1="{PAD}" x2="{W - PAD}" y1="{y(limit):.1f}" y2="{y(limit):.1f}"/>')
    for name, series in lines.items():
        points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in series)
        body.append(f'<polyline class="line {escape(name)}" points="{points}"/>')
    return head + "".join(body) + "</svg>"


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
