"""``edgepack ops``: the support table, generated from a target's op registry."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import handle_errors, out_console, print_json


@handle_errors
def ops(
    target: Annotated[str, typer.Option("--target", "-t", help="a target (see `edgepack targets`); tflite is "
                                        "an alias of cpu")] = "cpu",
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable rows")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="a Markdown table (for docs)")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """List the ONNX ops a target converts (generated from its registry)."""
    from ..targets.support import support_rows
    name, rows = support_rows(target)
    if json_out:
        print_json(rows)
    elif markdown:
        print("| op | domain | since opset | notes |\n|---|---|---|---|")
        for r in rows:
            print(f"| {r['op_type']} | {r['domain']} | {r['since']} | {r['notes']} |")
    else:
        t = Table("op", "domain", "since", "notes", title=f"{name}: {len({r['op_type'] for r in rows})} ONNX ops")
        for r in rows:
            t.add_row(r["op_type"], r["domain"], str(r["since"]), r["notes"])
        out_console.print(t)
