"""edgepack's qualcomm build against onnxruntime's own QNN quantization recipe, on the HTP simulator.

Per model and precision (w8a8, w8a16), in one run, on the same data:
  - onnxruntime's recipe (``qnn_recipe.recipe``: ``qnn_preprocess_model``, ``get_qnn_qdq_config`` with its
    defaults, ``quantize``) applied to the model as edgepack loads it (static shapes, constants folded);
  - edgepack: ``edgepack.build.build(..., targets=["qualcomm"], precision=...)`` with the same samples as an
    .npz and the same hold-out share (the build's seeded split, recomputed here with ``load_calibration``, so
    onnxruntime calibrates on exactly the build's calibration samples); mixed precision on, as a user gets it.
Both QDQ models then go through ``qnn_recipe.measure``: the HTP simulator on the held-out samples against
the fp32 reference (onnxruntime CPU), gated with the precision's own gate (``edgepack_runtime.precisions``),
and the EP-context compilation for HTP v75 with its placement report. The build's own verdict (its
verification through the runtime) is printed beside it.

    python benchmarks/bench_qualcomm.py [--models a.onnx,b.onnx] [--precisions w8a8,w8a16]
                                        [--calib 8] [--holdout 4] [--ort-only | --edgepack-only]
                                        [--json out.json]

The simulator is slow (about 10 s per inference of ResNet-50 or the 640x640 detector), hence few samples.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.simplefilter("ignore")
from benchmarks import qnn_models  # noqa: E402
from benchmarks.qnn_recipe import measure, recipe  # noqa: E402
from edgepack.calibration import load_calibration  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.model.ort import reference_outputs  # noqa: E402
from edgepack_runtime.precisions import gate  # noqa: E402

CLASSIFIERS = {"ocr_ppocr_mobile_v2_cls.onnx", "bytes_magika_standard_v3_3.onnx", *qnn_models.ARCHONLY}


def data_of(name: str, calib: int, holdout: int, tmp: Path):
    """(case, model, npz path, holdout fraction, calibration split, hold-out split, fp32 reference)."""
    case = qnn_models.case(name, calib + holdout)
    model = load_model(case.path, input_shapes=case.input_shapes)
    npz = tmp / f"{name}.npz"
    np.savez(npz, **{k: np.stack([s[k] for s in case.samples]) for k in case.samples[0]})
    fraction = holdout / (calib + holdout)
    cal = load_calibration(npz, model, holdout=fraction)
    return case, model, npz, fraction, cal, reference_outputs(model, cal.holdout)


def ort_row(model, cal, reference, precision: str) -> dict:
    names = [o.name for o in model.graph.output]
    t0 = time.perf_counter()
    try:
        qdq, notes = recipe(model, cal.calib, precision)
        row = measure(qdq, cal.holdout, reference, names, gate(precision))
        row["notes"] = notes
    except Exception as exc:        # the baseline's own failures are results too
        row = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    row["seconds"] = time.perf_counter() - t0
    return row


def edgepack_row(case, model, npz: Path, fraction: float, cal, reference, precision: str, tmp: Path) -> dict:
    import onnx

    from edgepack.build import build
    from edgepack_runtime.bundle import Bundle
    names = [o.name for o in model.graph.output]
    t0 = time.perf_counter()
    try:
        result = build(case.path, targets=["qualcomm"], input_shapes=case.input_shapes, calibration=npz,
                       holdout=fraction, precision=precision, allow_mismatch=True,
                       out=tmp / f"{case.name}.{precision}.edgepack")
        bundle = Bundle.open(result.path)
        entry = bundle.target("qualcomm")
        qdq = onnx.load_model_from_string(bundle.read(entry["file"]))
        qnn = entry.get("qnn", {})
        row = measure(qdq, cal.holdout, reference, names, gate(precision), placement=qnn.get("placement"))
        ctx = qnn.get("context") or {}
        row["ctx_bytes"] = bundle.size(ctx["file"]) if ctx.get("file") else None
        row["build_passed"] = entry["parity"]["passed"]
        row["build_backend"] = entry["parity"].get("backend")
        mixed = entry.get("quantization", {}).get("mixed_precision") or qnn.get("mixed_precision") or {}
        row["a16"], row["float"] = mixed.get("a16", []), mixed.get("float", [])
        tr = qnn.get("transforms") or {}
        row["transforms_kept"] = tr.get("kept", [])
        row["transforms_tried"] = [t["name"] for t in tr.get("tried", []) if t.get("mode") != "off"]
    except Exception as exc:
        row = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
    row["seconds"] = time.perf_counter() - t0
    return row


HEADER = ("| model | precision | quantizer | cosine (min / mean) | max rel err | SNR dB | top-1 | on HTP | QDQ / ctx bytes "
          "| gate | notes |\n|---|---|---|---|---|---|---|---|---|---|---|")


def fmt(model: str, precision: str, who: str, r: dict) -> str:
    if "error" in r:
        return f"| {model} | {precision} | {who} | — | — | — | — | — | — | fail | {r['error']} ({r['seconds']:.0f} s) |"
    top1 = "—" if r.get("top1") is None else f"{r['top1']:.2f}"
    ctx = f"{r['ctx_bytes']:,}" if r.get("ctx_bytes") else "—"
    notes = []
    if r.get("a16") or r.get("float"):
        notes.append(f"mixed: a16 {len(r['a16'])} nodes, float {len(r['float'])}")
    if r.get("transforms_tried"):
        notes.append(f"transforms kept: {', '.join(r['transforms_kept']) or 'none'} "
                     f"(of {', '.join(r['transforms_tried'])})")
    if "build_passed" in r:
        notes.append(f"build verdict {'pass' if r['build_passed'] else 'fail'} ({r['build_backend']})")
    notes += r.get("notes", [])
    if r.get("cpu_nodes"):
        notes.append(f"CPU: {', '.join(r['cpu_nodes'][:4])}{'…' if len(r['cpu_nodes']) > 4 else ''}")
    if r.get("ctx_error"):
        notes.append(f"no context: {r['ctx_error'][:80]}")
    if r.get("nonfinite"):
        notes.append("NaN/inf outputs")
    notes.append(f"{r['sec_per_inference']:.2f} s/inference, {r['seconds']:.0f} s")
    return (f"| {model} | {precision} | {who} | {r['cosine']:.4f} / {r['mean_cosine']:.4f} | {r['rel']:.3g} "
            f"| {r['snr']:.1f} | {top1} | {r['fraction_on_htp']:.0%} | {r['qdq_bytes']:,} / {ctx} "
            f"| {'pass' if r['passed'] else 'fail'} | {'; '.join(notes)} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(qnn_models.ALL))
    ap.add_argument("--precisions", default="w8a8,w8a16")
    ap.add_argument("--calib", type=int, default=8)
    ap.add_argument("--holdout", type=int, default=4)
    ap.add_argument("--ort-only", action="store_true", help="only onnxruntime's recipe")
    ap.add_argument("--edgepack-only", action="store_true",
                    help="only edgepack's build (when the recipe's rows are already measured on the same data)")
    ap.add_argument("--json", default=None, help="write every row here")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    rows, lines = [], []
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_qualcomm_") as tmp:
        for name in filter(None, args.models.split(",")):
            case, model, npz, fraction, cal, reference = data_of(name, args.calib, args.holdout, Path(tmp))
            short = name.removesuffix(".onnx") + (" (random weights)" if name in qnn_models.ARCHONLY else "")
            for precision in args.precisions.split(","):
                ort = None if args.edgepack_only else ort_row(model, cal, reference, precision)
                ours = None if args.ort_only else edgepack_row(case, model, npz, fraction, cal, reference,
                                                               precision, Path(tmp))
                for who, r in (("onnxruntime recipe", ort), ("edgepack", ours)):
                    if r is None:
                        continue
                    if name not in CLASSIFIERS:
                        r["top1"] = None
                    lines.append(fmt(short, precision, who, r))
                    print(lines[-1], flush=True)
                    rows.append({"model": name, "precision": precision, "quantizer": who, "data": case.data, **r})
    print("\n" + HEADER)
    print("\n".join(lines))
    for precision in args.precisions.split(","):
        for who in ("onnxruntime recipe", "edgepack"):
            mine = [r for r in rows if r["precision"] == precision and r["quantizer"] == who]
            if mine:
                print(f"{precision}: passes {who}: {sum(1 for r in mine if r.get('passed'))}/{len(mine)}")
    print(f"total wall time: {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
