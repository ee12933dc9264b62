"""``edgepack debug-quant``: where does a target's quantized model lose accuracy? Every layer against its
float twin (``edgepack.debug.debug_quant``)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import EdgepackError
from .build import CALIBRATION_HELP, PREPROCESS_HELP
from .common import err_console, handle_errors, json_stdout, out_console, parse_shapes, print_json


@handle_errors
def debug_quant(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    target: Annotated[str, typer.Option("--target", "-t", help="target whose quantization to debug (see "
                                        "`edgepack targets`)")] = "cpu",
    precision: Annotated[Optional[str], typer.Option(help="what to examine (default: the target's own: int8 for "
                                                     "cpu, palettize4 for coreml; see `edgepack targets`)")] = None,
    calibration: Annotated[Optional[Path], typer.Option(help=CALIBRATION_HELP)] = None,
    preprocess: Annotated[Optional[str], typer.Option(help=PREPROCESS_HELP)] = None,
    holdout: Annotated[float, typer.Option(help="share of the samples kept out to measure accuracy")] = 0.2,
    input_shape: Annotated[list[str], typer.Option("--input-shape", help="fix dynamic dims: NAME=D0,D1,...")] = [],
    input_value: Annotated[list[str], typer.Option("--input-value", help="freeze an input to a constant: "
                                                   "NAME=VALUE or NAME=V1,V2,... (e.g. sr=16000)")] = [],
    method: Annotated[str, typer.Option(help="activation ranges: auto (minmax or percentile, whichever is closer "
                                           "to fp32 on calibration samples) | minmax | percentile | mse | "
                                           "entropy")] = "auto",
    keep_float: Annotated[list[str], typer.Option(help="keep this ONNX node (or tensor) in float; "
                                                  "repeatable (try the culprits)")] = [],
    int8_policy: Annotated[str, typer.Option(help="cpu (LayerNorm, Softmax, attention MatMul, additive masks float) | "
                                             "strict (everything int8 that can be)")] = "cpu",
    transform: Annotated[list[str], typer.Option("--transform", help="graph transform before quantizing, as for "
                                                 "`edgepack build`: NAME=auto|on|off (norms, cle, smooth, adaround, "
                                                 "sum_round, bias_correction, all); auto keeps one only when the held-out figures improve; "
                                                 "all=off shows the plain quantization; repeatable")] = [],
    device: Annotated[Optional[str], typer.Option(help="a device profile (see devices/) whose OS level and "
                                                  "accelerator the target builds for, e.g. apple-a17-m3 for "
                                                  "Core ML w8a8 (iOS17)")] = None,
    top: Annotated[int, typer.Option(help="rows to show, worst first")] = 15,
    order: Annotated[str, typer.Option(help="rank (worst first) | graph (model order)")] = "rank",
    json_out: Annotated[bool, typer.Option("--json", help="print every layer as JSON on stdout")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """Quantize MODEL for a target and report, per layer, the error it adds (worst first)."""
    from ..debug import debug_quant as run_debug
    from ..model.freeze import parse_input_values
    from ..targets.base import QuantOptions
    from ..transforms import parse as parse_transforms
    if order not in ("rank", "graph"):
        raise EdgepackError(f"--order '{order}' is not one of rank, graph")
    chosen = ()
    if device is not None:
        from ..devices import profiles
        known = profiles()
        if device not in known:
            raise EdgepackError(f"--device '{device}' is not a device profile",
                                hint=f"device profiles: {', '.join(sorted(known))}")
        chosen = (known[device],)
    with json_stdout(json_out), err_console.status("loading the model and calibration data") as status:
        report = run_debug(model, target=target, precision=precision, calibration=calibration,
                           preprocess=preprocess, holdout=holdout, input_shapes=parse_shapes(input_shape),
                           input_values=parse_input_values(input_value),
                           quant=QuantOptions(method=method, keep_float=tuple(keep_float), policy=int8_policy,
                                              transforms=parse_transforms(transform)),
                           progress=lambda s: status.update(s), profiles=chosen)
    for w in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}")
    if json_out:
        print_json(report.as_json())
        return
    f = report.parity
    verdict = "[green]passes[/]" if f["passed"] else "[red]fails[/]"
    out_console.print(f"{report.target} {report.precision} ({report.method}) on {f.get('samples', report.calibration['counts']['holdout'])} "
                      f"held-out samples: mean cosine {f['mean_cosine']:.6f}, min cosine {f['min_cosine']:.6f}, "
                      f"SNR {f['min_snr_db']:.1f} dB" + (f", top-1 agreement {f['min_top1_agreement']:.1%}"
                                                         if "min_top1_agreement" in f else "")
                      + f" — {verdict} the {report.precision} gate")
    if report.floor:
        fl = report.floor
        said = "meets the gate" if fl["passed"] else "[yellow]misses the gate too[/]: " + escape(
            "; ".join(", ".join(why) for why in fl["failed"].values()))
        out_console.print(f"the fp32 model on inputs moved by half an int8 step: mean cosine "
                          f"{fl['mean_cosine']:.6f}, min cosine {fl['min_cosine']:.6f}, SNR {fl['min_snr_db']:.1f} dB "
                          f"({said})")
    rows = report.ranked if order == "rank" else report.layers
    table = Table(title="layers, worst first" if order == "rank" else "layers in graph order")
    numeric = ("#", "own SNR dB", "SNR dB", "added dB", "cosine", "lost on HTP dB")
    device = any("htp_added_db" in r for r in rows)     # qualcomm: dB the NPU loses beyond the QDQ arithmetic
    for col in ("#", "layer (tensor)", "op", "ONNX node", "own SNR dB", "SNR dB", "added dB", "cosine") + (
            ("lost on HTP dB",) if device else ()):
        table.add_column(col, justify="right" if col in numeric else "left")
    for i, r in enumerate(rows[:top], 1):
        own = r.get("quant_snr_db")
        table.add_row(str(i), r["tensor"], r["op"] + ("" if r["int8"] else " (float)"), r["origin"],
                      "—" if own is None else f"{own:.1f}", f"{r['snr_db']:.1f}", f"{r['added_db']:.1f}",
                      f"{r['cosine']:.5f}", *([f"{r.get('htp_added_db', 0.0):.1f}"] if device else []))
    (out_console if out_console.is_terminal else Console(highlight=False, width=200)).print(table)
    if report.ranked and order == "rank":
        from .. import targets as table
        worst = report.ranked[0]
        name = worst["origin"] or worst["tensor"]
        tip = (f"edgepack build {model} --precision {report.target}={report.precision} --keep-float {name}  "
               "(or let mixed precision pick)" if table.get(report.target).quant_choices() else
               f"a gentler precision for {report.target} (see `edgepack targets`), or a model trained for it")
        out_console.print(f"culprit: [bold]{name}[/] ({worst['op']}): its own {report.precision} SNR is "
                          f"{worst.get('quant_snr_db', 0):.1f} dB. Try: {tip}")
