"""``edgepack ops``: the support table, generated from a target's op registry."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..errors import EdgepackError
from .common import handle_errors, out_console, print_json


def registry_for(target: str):
    if target in ("tflite", "cpu"):
        from ..targets.tflite import TFLITE
        return TFLITE
    raise EdgepackError(f"no op registry for target '{target}'", hint="available: tflite")


def support_rows(target: str) -> list[dict]:
    return [{"domain": e.domain or "ai.onnx", "op_type": e.op_type, "since": e.since, "notes": e.doc}
            for e in registry_for(target).entries()]


@handle_errors
def ops(
    target: Annotated[str, typer.Option("--target", "-t", help="tflite (alias: cpu)")] = "tflite",
    json_out: Annotated[bool, typer.Option("--json", help="machine-readable rows")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="a Markdown table (for docs)")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """List the ONNX ops a target converts (generated from its registry)."""
    rows = support_rows(target)
    if json_out:
        print_json(rows)
    elif markdown:
        print("| op | domain | since opset | notes |\n|---|---|---|---|")
        for r in rows:
            print(f"| {r['op_type']} | {r['domain']} | {r['since']} | {r['notes']} |")
    else:
        t = Table("op", "domain", "since", "notes", title=f"{target}: {len({r['op_type'] for r in rows})} ONNX ops")
        for r in rows:
            t.add_row(r["op_type"], r["domain"], str(r["since"]), r["notes"])
        out_console.print(t)
