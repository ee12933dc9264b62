"""The ``edgepack`` command: thin wrappers that parse, call the library and print."""
from __future__ import annotations

import logging

import typer

from .. import __version__
from .build import build
from .debugquant import debug_quant
from .devices import devices
from .flash import flash, rollback
from .fleet import fleet_app
from .inspect import inspect
from .keys import keys_app, sign
from .monitor import monitor
from .ops import ops
from .rollout import rollout
from .targets import targets

app = typer.Typer(name="edgepack", no_args_is_help=True, add_completion=False,
                  help="Convert one ONNX model into a verified bundle for edge devices.")
app.command()(build)
app.command("debug-quant")(debug_quant)
app.command()(inspect)
app.add_typer(keys_app)
app.command()(sign)
app.command()(ops)
app.command()(devices)
app.command()(flash)
app.command()(rollback)
app.command()(targets)
app.add_typer(fleet_app)
app.command()(monitor)
app.command()(rollout)


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="print the version and exit")):
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    if version:
        typer.echo(f"edgepack {__version__}")
        raise typer.Exit(0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
