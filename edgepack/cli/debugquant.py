"""``edgepack debug-quant``: where does int8 lose accuracy? Every layer against its float twin."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.console import Console
from rich.table import Table

from .build import CALIBRATION_HELP, PREPROCESS_HELP, _check_choice, _check_int8_options, _shapes
from .common import err_console, handle_errors, out_console, print_json


@handle_errors
def debug_quant(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    calibration: Annotated[Optional[Path], typer.Option(help=CALIBRATION_HELP)] = None,
    preprocess: Annotated[Optional[str], typer.Option(help=PREPROCESS_HELP)] = None,
    holdout: Annotated[float, typer.Option(help="share of the samples kept out to measure accuracy")] = 0.2,
    input_shape: Annotated[list[str], typer.Option("--input-shape", help="fix dynamic dims: NAME=D0,D1,...")] = [],
    method: Annotated[str, typer.Option(help="activation ranges: auto (minmax or percentile, whichever is closer "
                                           "to fp32 on calibration samples) | minmax | percentile | mse | "
                                           "entropy")] = "auto",
    keep_float: Annotated[list[str], typer.Option(help="keep this ONNX node (or tensor) in float; "
                                                  "repeatable (try the culprits)")] = [],
    int8_policy: Annotated[str, typer.Option(help="cpu (LayerNorm, Softmax, attention MatMul float) | "
                                             "strict (everything int8 that can be)")] = "cpu",
    top: Annotated[int, typer.Option(help="rows to show, worst first")] = 15,
    order: Annotated[str, typer.Option(help="rank (worst first) | graph (model order)")] = "rank",
    json_out: Annotated[bool, typer.Option("--json", help="print every layer as JSON on stdout")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """Quantize MODEL to full-integer int8 and report, per layer, the error it adds (worst first)."""
    from ..calibration import load_calibration
    from ..build import _reference
    from ..model import load_model
    from ..quant import QuantOptions, quantize_cpu
    from ..targets.tflite import preflight
    from edgepack_runtime.precisions import PRECISIONS
    _check_int8_options(method, int8_policy)
    _check_choice("--order", order, ("rank", "graph"))
    with err_console.status("loading the model and calibration data"):
        onnx_model = load_model(model, input_shapes=_shapes(input_shape), preflight=preflight)
        cal = load_calibration(calibration, onnx_model, preprocess=preprocess, holdout=holdout,
                               synthetic_samples=40)
    for w in cal.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}")
    with err_console.status("quantizing and comparing every layer") as status:
        reference = _reference(onnx_model, cal.holdout)
        options = QuantOptions(method=method, mixed_precision=False, keep_float=tuple(keep_float),
                               policy=int8_policy)
        result = quantize_cpu(onnx_model, cal.calib, cal.holdout, reference, PRECISIONS["int8"].gate, options,
                              progress=lambda s: status.update(s))
    rows = result.ranked if order == "rank" else [r for r in result.layers]
    if json_out:
        print_json({"model": str(model), "method": result.method, "calibration": cal.describe(),
                    "parity": result.figures, "culprits": [r["tensor"] for r in result.ranked[:10]],
                    "layers": result.layers})
        return
    f = result.figures
    verdict = "[green]passes[/]" if f["passed"] else "[red]fails[/]"
    out_console.print(f"int8 ({result.method}) on {len(cal.holdout)} held-out samples: mean cosine "
                      f"{f['mean_cosine']:.6f}, min cosine {f['min_cosine']:.6f}, "
                      f"SNR {f['min_snr_db']:.1f} dB" + (f", top-1 agreement {f['min_top1_agreement']:.1%}"
                                                         if "min_top1_agreement" in f else "")
                      + f" — {verdict} the int8 gate")
    table = Table(title="layers, worst first" if order == "rank" else "layers in graph order")
    for col in ("#", "layer (tensor)", "op", "ONNX node", "own SNR dB", "SNR dB", "added dB", "cosine"):
        table.add_column(col, justify="right" if col in ("#", "own SNR dB", "SNR dB", "added dB", "cosine") else "left")
    for i, r in enumerate(rows[:top], 1):
        own = r.get("quant_snr_db")
        table.add_row(str(i), r["tensor"], r["op"] + ("" if r["int8"] else " (float)"), r["origin"],
                      "—" if own is None else f"{own:.1f}", f"{r['snr_db']:.1f}", f"{r['added_db']:.1f}",
                      f"{r['cosine']:.5f}")
    (out_console if out_console.is_terminal else Console(highlight=False, width=200)).print(table)
    if result.ranked and order == "rank":
        worst = result.ranked[0]
        out_console.print(f"culprit: [bold]{worst['origin'] or worst['tensor']}[/] ({worst['op']}): its own int8 "
                          f"SNR is {worst.get('quant_snr_db', 0):.1f} dB. Try: edgepack build {model} --precision "
                          f"int8 --keep-float {worst['origin'] or worst['tensor']}  (or let mixed precision pick)")
