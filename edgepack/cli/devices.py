"""``edgepack devices``: the device profiles ``--target`` accepts."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import handle_errors, out_console, print_json


@handle_errors
def devices(
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable profiles")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """List device profiles (devices/*.toml)."""
    from .. import targets as table
    from ..devices import profiles
    found = profiles()
    if json_out:
        print_json(found)
        return
    t = Table("profile", "arch", "targets", "memory", "description")
    for name, p in found.items():
        prefs = p.get("precision", {})
        targets = ", ".join((x if x in table.TABLE else f"{x} (later)") + (f" {prefs[x]}" if x in prefs else "")
                            for x in p["targets"])
        t.add_row(name, p["arch"], targets, f"{p['memory_mb']} MB", p["description"])
    out_console.print(t)
