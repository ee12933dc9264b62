"""The coreml target on the families of issue #14: fp16, w8 (int8 weights) and w8a8 (int8 weights and
activations), judged by the issue's verdict on held-out inputs, in one run.

Same data and split as ``bench_int8_families.py`` (``families_data``: ``--calib`` calibration samples, a search
split the build holds out for its gate and mixed-precision search, and a disjoint ``--holdout`` set that only
judges; seed 0). Each row goes through the coreml target's own entry point (``TARGET.convert``, what
``edgepack build --target apple-a17-m3`` runs; deployment iOS17), and the package is run by the numpy MIL
reference executor (``coreml-reference``, fp16-faithful; Core ML itself needs macOS) on the held-out inputs
against onnxruntime fp32. ``w8a8`` rows: mixed precision on (the build's default), with the precision's own
gate or, for ``w8a8-issue``, the issue's verdict as the build's gate (``--cosine-over min``, 0.99, 0.1).
Reported: the verdict (worst-sample cosine >= 0.99 and max error <= 10% of the range, worst output), SNR, task
figures, package size against fp16, the activations mixed precision left fp16, seconds.

    python benchmarks/bench_coreml_families.py [--models ppocr_cls,oww_alexa] [--precisions fp16,w8,w8a8]
        [--json out.json] [--calib 32] [--search 32] [--holdout 32]

Latency is not measured: only a device with the A17 Pro / M4 Neural Engine shows what int8 activations buy.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "runtime"))

from benchmarks import families_data, families_measure as fm  # noqa: E402

PRECISIONS = ("fp16", "w8", "w8a8", "w8a8-issue")
PROFILE = {"name": "apple-a17-m3", "os": {"minimum_deployment_target": "iOS17"}}


def convert(model, split, spec: str):
    from dataclasses import replace

    from edgepack.calibration.dataset import CalibrationSet
    from edgepack.targets.base import Job, QuantOptions
    from edgepack.targets.coreml.target import TARGET
    from edgepack_runtime.precisions import gate
    calib, search, ref_search = split
    precision = spec.split("-")[0]
    cal = CalibrationSet(calib, search, "given", None, [], None, len(search) / (len(calib) + len(search)))
    g = gate(precision)
    if spec.endswith("-issue"):
        g = replace(g, min_cosine=0.99, max_rel_error=0.1, cosine_over="min")
    return TARGET.convert(model, Job(precision, cal, ref_search, g, QuantOptions(), profiles=(PROFILE,)))


def run_package(data: bytes, model, samples: list[dict]) -> list[dict]:
    from edgepack_runtime.backends.coreml_ref.program import load
    program = load(data)
    names = [o.name for o in model.graph.output]
    out = []
    for s in samples:
        got = program.run({c: s[v.name] for c, v in zip(program.input_names, model.graph.input)})
        out.append({o: got[c] for o, c in zip(names, program.output_names)})
    return out


def run_model(key: str, specs: list[str], args, emit) -> None:
    from edgepack.model import load_model
    from edgepack.model.ort import reference_outputs
    n_cal, n_search = args.calib, args.search
    case = families_data.case(key, n_cal + n_search + args.holdout, seed=args.seed)
    model = load_model(case.path, input_shapes=case.input_shapes)
    calib, search = case.samples[:n_cal], case.samples[n_cal:n_cal + n_search]
    holdout = case.samples[n_cal + n_search:]
    names = [o.name for o in model.graph.output]
    ref_search, ref = reference_outputs(model, search), reference_outputs(model, holdout)
    fp16_size = None
    for spec in specs:
        t0 = time.perf_counter()
        row = {"model": key, "precision": spec, "runtime": "coreml-reference (numpy MIL executor)"}
        try:
            conv = convert(model, (calib, search, ref_search), spec)
            data = conv.files[conv.file]
            row.update(fm.judge(run_package(data, model, holdout), ref, names))
            a = conv.extra.get("activations") or {}
            row.update(size=len(data), fp16_size=conv.info.get("fp16_size") or fp16_size,
                       quantized_ops=a.get("quantized_ops"), fp16_activations=a.get("fp16_activations"),
                       build_gate_passed=a.get("passed"), mil_ops=conv.info.get("mil_ops"))
            if spec == "fp16":
                fp16_size = len(data)
        except Exception as exc:
            row["error"] = fm.error_text(exc, 300)
        row["seconds"] = time.perf_counter() - t0
        emit(row)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(families_data.FAMILIES))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--json", default="bench_coreml_families.json")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--search", type=int, default=32)
    ap.add_argument("--holdout", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = Path(args.json)
    doc = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    done = {(r["model"], r["precision"]) for r in doc["rows"]}

    def emit(row):
        doc["rows"].append(row)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=float))
        os.replace(tmp, path)
        print(json.dumps({k: row.get(k) for k in ("model", "precision", "passed", "cosine", "range_error", "snr_db",
                                                   "size", "fp16_size", "fp16_activations", "error", "seconds")},
                         default=float), flush=True)

    for key in args.models.split(","):
        specs = [s for s in args.precisions.split(",") if (key, s) not in done]
        if specs:
            run_model(key, specs, args, emit)
    print(table(doc["rows"]))
    return 0


def table(rows: list[dict]) -> str:
    lines = ["| model | precision | cosine (worst output) | max err / range | verdict | SNR dB | task figures | "
             "size / fp16 | activations left fp16 | s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['precision']} | — | — | fail | — | — | — | {r['error'][:120]} | "
                         f"{r['seconds']:.0f} |")
            continue
        task = "; ".join(f"{k.split(':')[-1]} {v:.3g}" for k, v in (r.get("task") or {}).items()
                         if isinstance(v, float) and k.split(":")[-1] in ("iou_50", "top1_agreement",
                                                                            "text_agreement", "max_prob_error"))
        size = f"{r['size'] / r['fp16_size']:.3f}" if r.get("fp16_size") else "—"
        left = r.get("fp16_activations")
        left = "—" if left is None else (f"{len(left)} of {len(left) + (r.get('quantized_ops') or 0)}" if left
                                         else f"0 of {r.get('quantized_ops')}")
        lines.append(f"| {r['model']} | {r['precision']} | {r['cosine']:.4f} | {r['range_error']:.1%} | "
                     f"{'pass' if r['passed'] else 'fail'} | {r['snr_db']:.1f} | {task or '—'} | {size} | {left} | "
                     f"{r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
