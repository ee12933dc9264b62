"""Shared CLI plumbing: error -> exit code mapping, consoles, JSON output."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import traceback

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import EdgepackError, ModelError

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False, soft_wrap=True)  # long lines stay whole in logs and pipes


def handle_errors(fn):
    """Run a command body: EdgepackError -> one readable line and its exit code; --verbose adds the trace."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        verbose = kwargs.get("verbose", False)
        try:
            return fn(*args, **kwargs)
        except EdgepackError as exc:
            if verbose:
                traceback.print_exc()
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug: say so, keep the trace one flag away
            if verbose:
                traceback.print_exc()
            err_console.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
                              "(re-run with --verbose and report it)", soft_wrap=True)
            raise typer.Exit(1) from None
    return wrapper


_json_out = None      # the real stdout while ``json_stdout`` holds file descriptor 1 for native libraries


def print_json(data) -> None:
    out = _json_out or sys.stdout
    out.write(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    out.flush()


@contextlib.contextmanager
def json_stdout(enabled: bool = True):
    """Keep stdout for the JSON document alone. Native libraries write to file descriptor 1 behind Python's
    back (the QNN SDK in onnxruntime-qnn prints a "LIBNATIVE" line when it loads), which would make
    ``--json`` output unparseable: inside, fd 1 points at stderr and ``print_json`` writes to the real stdout.
    Without a real fd 1 (a test runner's captured stdout) nothing changes."""
    global _json_out
    if not enabled:
        yield
        return
    try:
        fd, err = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    os.dup2(err, fd)
    _json_out = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, fd)
        os.close(saved)
        _json_out.close()
        _json_out = None


def parse_shapes(values: list[str]) -> dict[str, list[int]]:
    """``--input-shape NAME=D0,D1,...`` values (repeatable) -> {name: dims}; ModelError on bad or repeated ones."""
    from ..model import parse_input_shape
    shapes = {}
    for text in values:
        name, dims = parse_input_shape(text)
        if name in shapes:
            raise ModelError(f"--input-shape given twice for '{name}'")
        shapes[name] = dims
    return shapes
