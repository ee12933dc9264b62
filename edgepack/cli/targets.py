"""``edgepack targets``: the targets this version builds, their precisions, and whether this host can."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import handle_errors, out_console, print_json


@handle_errors
def targets(
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable rows")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """List the targets: format, precisions, default precision, and availability on this host (and why not)."""
    from ..targets.support import describe_targets
    rows = describe_targets()
    if json_out:
        print_json(rows)
        return
    t = Table("target", "format", "precisions (default first)", "verified by", "here", "about")
    for r in rows:
        precisions = [r["default_precision"]] + [p for p in r["precisions"] if p != r["default_precision"]]
        here = "yes" if r["available"] else f"no: {r['why_not']}"
        t.add_row(r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else ""), r["format"] or "-",
                  ", ".join(p for p in precisions if p) or "-", r["backend"] or ("best installed" if r["format"]
                                                                                  else "-"),
                  here, r["summary"] if r["available"] else "")
    out_console.print(t)
