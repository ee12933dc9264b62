"""The fleet in the terminal: a rich table rebuilt from a ``FleetState`` snapshot, refreshed in a ``Live`` view.

    render(snapshot, stats=monitor.stats())      # a renderable: header with counters, then one row per device
    render_text(snapshot, width=160)             # the same as plain text (tests, logs)
    live(lambda: render(...), refresh=1.0, stop=event, duration=None)

Every cell is a ``rich.text.Text``: device ids and model names come from the network and are never read as
rich markup (``[bold]`` in a device id is shown as typed).
"""
from __future__ import annotations

import io
import threading
import time
from typing import Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .columns import NUMERIC, cells, columns_for, counters_line

__all__ = ["header", "live", "render", "render_text", "table"]

STATE_STYLE = {"online": "green", "offline": "red", "unknown": "yellow"}


def header(snapshot: dict, stats: dict | None = None, *, title: str = "edgepack monitor") -> Text:
    """Title line, the counters (devices online/total, alerts, messages accepted/rejected) and the link."""
    text = Text()
    text.append(title, style="bold")
    if stats:
        broker = stats.get("broker")
        connected = stats.get("connected")
        if broker:
            text.append(f"  {broker}", style="dim")
        if connected is not None:
            text.append("  connected" if connected else "  disconnected",
                        style="green" if connected else "bold red")
    text.append("\n" + counters_line(snapshot))
    return text


def table(snapshot: dict, *, now: float | None = None, limit: int | None = None) -> Table:
    """One row per device of ``snapshot`` (in its order), at most ``limit`` rows plus a line saying how many more."""
    rows = snapshot.get("devices", [])
    cols = columns_for(rows)
    t = Table(expand=False, pad_edge=False, show_edge=False, header_style="bold")
    for key, title in cols:
        t.add_column(title, justify="right" if key in NUMERIC else "left", no_wrap=key != "device",
                     overflow="fold")
    shown = rows if limit is None else rows[:limit]
    for row in shown:
        texts = cells(row, cols, now)
        styled = []
        for (key, _), value in zip(cols, texts):
            style = STATE_STYLE.get(value, "") if key == "online" else ""
            if key == "drift_alerts" and row.get("drift_alerts"):
                style = "bold red"
            styled.append(Text(value, style=style))
        t.add_row(*styled)
    if len(shown) < len(rows):
        t.caption = f"{len(rows) - len(shown)} more devices (filter with --fleet/--model)"
    return t


def render(snapshot: dict, stats: dict | None = None, *, now: float | None = None,
           limit: int | None = None) -> RenderableType:
    """Header and table together."""
    if not snapshot.get("devices"):
        return Group(header(snapshot, stats), Text("no devices yet: waiting for messages", style="dim"))
    return Group(header(snapshot, stats), Text(""), table(snapshot, now=now, limit=limit))


def render_text(snapshot: dict, stats: dict | None = None, *, width: int = 200, now: float | None = None,
                limit: int | None = None) -> str:
    """``render(...)`` as plain text ``width`` columns wide (no colours)."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(render(snapshot, stats, now=now, limit=limit))
    return console.file.getvalue()


def live(frame: Callable[[], RenderableType], *, refresh: float = 1.0, stop: threading.Event | None = None,
         duration: float | None = None, console: Console | None = None) -> None:
    """Redraw ``frame()`` every ``refresh`` seconds until ``stop`` is set or ``duration`` seconds have passed
    (Ctrl-C ends it too: ``KeyboardInterrupt`` propagates after the view is closed)."""
    stop = stop or threading.Event()
    end = None if duration is None else time.monotonic() + duration
    console = console or Console()
    # on a terminal, a view taller than the screen is cut (else every redraw would scroll); in a pipe or a
    # log, the last frame is printed whole
    with Live(frame(), console=console, auto_refresh=False, transient=False,
              vertical_overflow="ellipsis" if console.is_terminal else "visible") as view:
        while not stop.is_set():
            wait = refresh if end is None else min(refresh, end - time.monotonic())
            if wait <= 0 or stop.wait(wait):
                break
            view.update(frame(), refresh=True)
        view.update(frame(), refresh=True)
