"""``edgepack build``."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .common import err_console, handle_errors, json_stdout, out_console, parse_shapes, print_json


CALIBRATION_HELP = (".npz of input name -> [samples, ...], a folder of .npy files, or a folder of images "
                    "(with --preprocess); a hold-out share measures accuracy. Default: synthetic data, with a warning")
PREPROCESS_HELP = ("image preprocessing: 'size=224,224;layout=NCHW;mean=0.485,0.456,0.406;std=0.229,0.224,0.225;"
                   "scale=255;order=RGB;resize=bilinear' or a TOML file with those keys")


@handle_errors
def build(
    model: Annotated[Path, typer.Argument(help="ONNX model file")],
    target: Annotated[list[str], typer.Option("--target", "-t", help="a target (see `edgepack targets`) or a device "
                                              "profile name (see `edgepack devices`); repeatable")] = ["cpu"],
    input_shape: Annotated[list[str], typer.Option("--input-shape", help="fix dynamic dims: NAME=D0,D1,...; "
                                                   "repeatable")] = [],
    input_value: Annotated[list[str], typer.Option("--input-value", help="freeze an input to a constant: NAME=VALUE "
                                                   "or NAME=V1,V2,... in the input's dtype (e.g. sr=16000); it "
                                                   "leaves the bundle's interface and constant folding removes "
                                                   "the branches it decides; repeatable")] = [],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="bundle path (default: beside the "
                                                   "model, MODEL.edgepack)")] = None,
    calibration: Annotated[Optional[Path], typer.Option(help=CALIBRATION_HELP)] = None,
    preprocess: Annotated[Optional[str], typer.Option(help=PREPROCESS_HELP)] = None,
    holdout: Annotated[float, typer.Option(help="share of the calibration samples kept out to measure "
                                           "accuracy")] = 0.2,
    allow_mismatch: Annotated[bool, typer.Option(help="write the bundle even when parity is below threshold")] = False,
    precision: Annotated[Optional[str], typer.Option(help="PRECISION for every target, or TARGET=PRECISION,... "
                                                     "one by one (e.g. cpu=int8,onnx=fp32); default: the device "
                                                     "profile's preference, else the target's default. See "
                                                     "`edgepack targets` for each target's precisions")] = None,
    method: Annotated[str, typer.Option(help="int8 activation ranges: auto (minmax or percentile, whichever is "
                                           "closer to fp32 on calibration samples) | minmax | percentile | mse | "
                                           "entropy")] = "auto",
    io_type: Annotated[str, typer.Option("--io", help="int8 model I/O: float | int8 | uint8")] = "float",
    mixed_precision: Annotated[bool, typer.Option(help="int8: keep the most sensitive layers in float when "
                                                  "the accuracy gate fails")] = True,
    max_float: Annotated[float, typer.Option(help="int8 mixed precision budget: largest share of layers kept "
                                             "in float")] = 0.25,
    keep_float: Annotated[list[str], typer.Option(help="int8: keep this ONNX node (or tensor) in float; "
                                                  "repeatable")] = [],
    int8_policy: Annotated[str, typer.Option(help="int8: cpu (LayerNorm, Softmax, attention MatMul and additive "
                                             "masks stay float: no fast int8 CPU kernels) | strict (every op with an int8 "
                                             "kernel is quantized, for integer-only accelerators)")] = "cpu",
    mixed_rungs: Annotated[str, typer.Option("--mixed-rungs", help="cpu int8 mixed precision, what a sensitive "
                                             "layer becomes: auto (float under --int8-policy cpu, where XNNPACK "
                                             "has no int16 kernels and 16x8 layers run ~20x slower than fp32; "
                                             "int16 then float under strict) | int16,float | float")] = "auto",
    transform: Annotated[list[str], typer.Option("--transform", help="int8: graph transform before quantizing, "
                                                 "NAME=auto|on|off with NAME norms (spelled-out layer norms and "
                                                 "softmaxes fused into one op), cle (cross-layer equalization), "
                                                 "smooth (SmoothQuant-style outlier migration), adaround (fitted "
                                                 "weight rounding; default off: slow), sum_round (weight rounding "
                                                 "that keeps each kernel's sum), bias_correction, or all; "
                                                 "auto (the default) keeps one only when the held-out figures "
                                                 "improve; repeatable")] = [],
    report: Annotated[Optional[Path], typer.Option(help="write a self-contained HTML report here")] = None,
    min_cosine: Annotated[Optional[float], typer.Option(help="parity gate: lowest acceptable cosine per output "
                                                        "(default by precision: 0.9999 / 0.999 / 0.99 / 0.98)")] = None,
    max_rel_error: Annotated[Optional[float], typer.Option(help="parity gate: highest acceptable max|err| / max|ref| "
                                                           "(default by precision: 1e-3 / 1e-2 / 0.1 / 0.5)")] = None,
    min_snr_db: Annotated[Optional[float], typer.Option(help="accuracy gate: lowest SNR in dB per output "
                                                        "(default: 15 for int8, off otherwise)")] = None,
    min_top1: Annotated[Optional[float], typer.Option(help="accuracy gate: lowest top-1 agreement for "
                                                      "classifier-like outputs (default off)")] = None,
    cosine_over: Annotated[Optional[str], typer.Option("--cosine-over", help="accuracy gate: judge --min-cosine "
                                                       "on the worst held-out sample (min) or on their mean "
                                                       "(mean); default by precision: mean for int8, min "
                                                       "otherwise")] = None,
    model_version: Annotated[str, typer.Option("--model-version", help="version string stored in the bundle")] = "1",
    sign_key: Annotated[Optional[Path], typer.Option("--sign-key", help="private key file (`edgepack keys generate`): "
                                                     "sign the bundle; checked before any work")] = None,
    require_npu: Annotated[bool, typer.Option("--require-npu", help="fail when any node of an NPU target "
                                              "(qualcomm) would fall back to CPU; the error lists them")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print the manifest as JSON on stdout")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """Convert MODEL for each target, verify every target against onnxruntime, write a bundle."""
    from ..build import build as run_build
    from ..model.freeze import parse_input_values
    from ..targets.base import QuantOptions
    from ..transforms import parse as parse_transforms
    shapes = parse_shapes(input_shape)
    transforms = parse_transforms(transform)
    values = parse_input_values(input_value)
    with json_stdout(json_out), Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                         console=err_console, transient=True) as bar:
        task = bar.add_task("starting", total=None)
        quant = QuantOptions(method=method, io=io_type, mixed_precision=mixed_precision,
                             max_float_fraction=max_float, keep_float=tuple(keep_float), policy=int8_policy,
                             transforms=transforms, rungs=mixed_rungs)
        result = run_build(model, targets=target, input_shapes=shapes, input_values=values, out=output,
                           calibration=calibration,
                           preprocess=preprocess, holdout=holdout, allow_mismatch=allow_mismatch,
                           version=model_version, precision=precision, quant=quant, report=report,
                           gate_overrides=dict(min_cosine=min_cosine, max_rel_error=max_rel_error,
                                               min_snr_db=min_snr_db, min_top1=min_top1, cosine_over=cosine_over),
                           progress=lambda step: bar.update(task, description=step), sign_key=sign_key,
                           require_npu=require_npu)
    for w in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}")
    if json_out:
        print_json({"bundle": str(result.path), "manifest": result.manifest, "signature": result.signature})
        return
    out_console.print(f"[bold green]built[/] {result.path}"
                      + (f", signed with key {result.signature['key_id']}" if result.signature else ""))
    for t in result.manifest["targets"]:
        p, info = t["parity"], t["info"]
        extra = f", {info['transpose_count']} TRANSPOSE" if "transpose_count" in info else ""
        out_console.print(f"  {t['name']:<8} {t['format']:<7} {t['precision']:<12} {info['size']:>10,} B  "
                          f"cosine {p['min_cosine']:.6f}  rel.err {p['max_rel_error']:.2e}  "
                          f"({p['backend']}, {p['samples']} {p['data']} samples{extra})")
        figures = [f"mean cosine {p['mean_cosine']:.6f}"] if "mean_cosine" in p else []
        if "min_snr_db" in p:
            figures.append(f"SNR {p['min_snr_db']:.1f} dB")
        if "min_top1_agreement" in p:
            figures.append(f"top-1 agreement {p['min_top1_agreement']:.1%}")
        lat = t.get("latency_ms") or {}
        if lat:
            ratio = f" ({lat['ratio_to_fp32']:.2f}x fp32)" if "ratio_to_fp32" in lat else ""
            figures.append(f"latency {lat['mean']:.3f} ms{ratio}")
        if "fp32_size" in info:
            figures.append(f"size {info['size'] / info['fp32_size']:.2f}x fp32")
        if figures:
            out_console.print("           " + ", ".join(figures))
        dc = t.get("dynamic_convs") or {}
        if dc.get("kept") == "pointwise":
            a = dc.get("all", {})
            out_console.print(f"           int8 weights on 1x1 convolutions and fully-connected ops; wider kernels "
                              f"fp16 (all int8: cosine {a.get('min_cosine', 0):.6f}, rel.err "
                              f"{a.get('max_rel_error', 0):.2e}, missed the gate)")
        f = p.get("floor")
        if f:
            verdict = "meets the gate" if f["passed"] else "[yellow]misses the gate[/]: " + escape(
                "; ".join(", ".join(why) for why in f["failed"].values()))
            out_console.print(f"           the fp32 model on inputs moved by half an int8 step: cosine "
                              f"{f['min_cosine']:.6f}, SNR {f['min_snr_db']:.1f} dB ({verdict})")
        a = t.get("activations")
        if a:
            kept = a["fp16_activations"]
            wide = a.get("wide_inputs") or []
            out_console.print(f"           int8 activations into {a['quantized_ops']} ops (ranges from "
                              f"{a['calibration_samples']} calibration samples); fp16: "
                              f"{escape(', '.join(kept)) if kept else 'none'}"
                              + (f"; fp16 for inputs beyond +-1e4 (masks, near-overflow values): "
                                 f"{escape(', '.join(wide))}" if wide else ""))
        q = t.get("quantization")
        if q:
            kept = [f["origin"] or f["tensor"] for f in q["float_layers"]]
            mp = q["mixed_precision"]
            cost = (f" (size {mp['size_cost']:.2f}x, latency {mp['latency_cost']:.2f}x of all-int8)"
                    if "size_cost" in mp else "")
            out_console.print(f"           int8 {q['method']}, {q['int8_ops']} int8 ops; kept in float: "
                              f"{', '.join(kept) or 'none'}{cost}")
            if q.get("int16_ops"):
                wide = [f["origin"] or f["tensor"] for f in q.get("int16_layers", [])]
                out_console.print(f"           {q['int16_ops']} ops on int16 activations"
                                  + (f"; raised to int16: {', '.join(wide)}" if wide else ""))
            for c in q.get("coarse_outputs", []):
                out_console.print(f"           output {escape(c['tensor'])} ({c['op']}) computed in float: its "
                                  f"integer grid is off by up to {c['error']:.3g} on values "
                                  f"{c['range'][0]:.3g} ... {c['range'][1]:.3g}")
            lighter = []
            if q.get("dynamic_ops"):
                lighter.append(f"{q['dynamic_ops']} fully-connected ops on the dynamic int8 kernel")
            if q.get("fp16_constants"):
                lighter.append(f"{q['fp16_constants']} float constants stored as fp16")
            if lighter:
                out_console.print("           float layers lightened: " + "; ".join(lighter))
            if q.get("transforms"):
                out_console.print(f"           transforms kept: {', '.join(q['transforms']['kept']) or 'none'}")
