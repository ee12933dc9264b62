"""``edgepack build``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..errors import ModelError
from ..verify.parity import BY_PRECISION, Thresholds
from .common import err_console, handle_errors, out_console, print_json


def _shapes(values: list[str]) -> dict[str, list[int]]:
    from ..model import parse_input_shape
    shapes = {}
    for text in values:
        name, dims = parse_input_shape(text)
        if name in shapes:
            raise ModelError(f"--input-shape given twice for '{name}'")
        shapes[name] = dims
    return shapes


def _thresholds(precision: str, min_cosine, max_rel_error) -> Thresholds | None:
    if min_cosine is None and max_rel_error is None:
        return None
    base = BY_PRECISION.get(precision, BY_PRECISION["fp32"])
    return Thresholds(base.min_cosine if min_cosine is None else min_cosine,
                      base.max_rel_error if max_rel_error is None else max_rel_error)


@handle_errors
def build(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    target: Annotated[list[str], typer.Option("--target", "-t", help="cpu | onnx | coreml | qualcomm | a device "
                                              "profile name (see `edgepack devices`); repeatable")] = ["cpu"],
    input_shape: Annotated[list[str], typer.Option("--input-shape", help="fix dynamic dims: NAME=D0,D1,...; "
                                                   "repeatable")] = [],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="bundle path (default: beside the "
                                                   "model, MODEL.edgepack)")] = None,
    calibration: Annotated[Optional[Path], typer.Option(help=".npz of input name -> [samples, ...] used for "
                                                        "verification")] = None,
    allow_mismatch: Annotated[bool, typer.Option(help="write the bundle even when parity is below threshold")] = False,
    precision: Annotated[str, typer.Option(help="cpu target precision: fp32 | fp16 (fp16 weights) | "
                                           "int8-dynamic (int8 weights, hybrid kernels)")] = "fp32",
    min_cosine: Annotated[Optional[float], typer.Option(help="parity gate: lowest acceptable cosine per output "
                                                        "(default by precision: 0.9999 / 0.999 / 0.99)")] = None,
    max_rel_error: Annotated[Optional[float], typer.Option(help="parity gate: highest acceptable max|err| / max|ref| "
                                                           "(default by precision: 1e-3 / 1e-2 / 0.1)")] = None,
    model_version: Annotated[str, typer.Option("--model-version", help="version string stored in the bundle")] = "1",
    json_out: Annotated[bool, typer.Option("--json", help="print the manifest as JSON on stdout")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """Convert MODEL for each target, verify every target against onnxruntime, write a bundle."""
    from ..build import build as run_build
    shapes = _shapes(input_shape)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        result = run_build(model, targets=target, input_shapes=shapes, out=output, calibration=calibration,
                           allow_mismatch=allow_mismatch, version=model_version,
                           thresholds=_thresholds(precision, min_cosine, max_rel_error), precision=precision,
                           progress=lambda step: bar.update(task, description=step))
    for w in result.warnings:
        err_console.print(f"[yellow]warning:[/] {w}")
    if json_out:
        print_json({"bundle": str(result.path), "manifest": result.manifest})
        return
    out_console.print(f"[bold green]built[/] {result.path}")
    for t in result.manifest["targets"]:
        p, info = t["parity"], t["info"]
        extra = f", {info['transpose_count']} TRANSPOSE" if "transpose_count" in info else ""
        out_console.print(f"  {t['name']:<8} {t['format']:<7} {t['precision']:<5} {info['size']:>10,} B  "
                          f"cosine {p['min_cosine']:.6f}  rel.err {p['max_rel_error']:.2e}  "
                          f"({p['backend']}, {p['samples']} {p['data']} samples{extra})")
