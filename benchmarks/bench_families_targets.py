"""The coreml and qualcomm targets on the families of issue #14, judged by the issue's verdict on held-out
inputs, in one run per target.

Same data and split as ``bench_int8_families.py`` (``families_data``: ``--calib`` calibration samples, a search
split the build holds out for its gate and mixed-precision search, and a disjoint ``--holdout`` set that only
judges; seed 0). Each row goes through the target's own entry point (``TARGET.convert``, what ``edgepack build``
runs) with mixed precision on (the build's default), with the precision's own gate or, for ``<precision>-issue``,
the issue's verdict as the build's gate (``--cosine-over min``, 0.99, 0.1). The result runs on the held-out
inputs against onnxruntime fp32 (the QDQ model itself for a QDQ model):

- ``--target coreml`` (deployment iOS17, the apple-a17-m3 profile): fp16, w8 (int8 weights), w8a8 (int8
  weights and activations); the package runs in the numpy MIL reference executor (``coreml-reference``,
  fp16-faithful; Core ML itself needs macOS). Size against the fp16 package.
- ``--target qualcomm``: w8a8, w8a16; the QDQ model runs on onnxruntime-qnn's HTP simulator. Size of the QDQ
  model against the fp32 ONNX model.

Reported: the verdict (worst-sample cosine >= 0.99 and max error <= 10% of the range, worst output), SNR, task
figures, size, the layers mixed precision left in higher precision, seconds.

    python benchmarks/bench_families_targets.py --target coreml [--models ppocr_cls,oww_alexa]
        [--precisions fp16,w8,w8a8] [--json out.json] [--calib 32] [--search 32] [--holdout 32]

Latency is not measured: only a device (an A17 Pro / M4 Neural Engine, a Snapdragon HTP) shows what int8 buys.
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

PRECISIONS = {"coreml": ("fp16", "w8", "w8a8", "w8a8-issue"),
              "qualcomm": ("w8a8", "w8a16", "w8a8-issue", "w8a16-issue")}
PROFILES = {"coreml": {"name": "apple-a17-m3", "os": {"minimum_deployment_target": "iOS17"}}}


def _target(name: str):
    if name == "coreml":
        from edgepack.targets.coreml.target import TARGET
    else:
        from edgepack.targets.qualcomm.target import TARGET
    return TARGET


def convert(model, split, spec: str, target: str = "coreml"):
    from dataclasses import replace

    from edgepack.calibration.dataset import CalibrationSet
    from edgepack.targets.base import Job, QuantOptions
    from edgepack_runtime.precisions import gate
    calib, search, ref_search = split
    precision = spec.split("-")[0]
    cal = CalibrationSet(calib, search, "given", None, [], None, len(search) / (len(calib) + len(search)))
    g = gate(precision)
    if spec.endswith("-issue"):
        g = replace(g, min_cosine=0.99, max_rel_error=0.1, cosine_over="min")
    profiles = (PROFILES[target],) if target in PROFILES else ()
    return _target(target).convert(model, Job(precision, cal, ref_search, g, QuantOptions(), profiles=profiles))


def run_package(data: bytes, model, samples: list[dict], target: str = "coreml") -> list[dict]:
    names = [o.name for o in model.graph.output]
    if target == "qualcomm":
        from edgepack.targets.qualcomm import htp
        return [dict(zip(names, outs)) for outs in htp.run(data, samples)]
    from edgepack_runtime.backends.coreml_ref.program import load
    program = load(data)
    out = []
    for s in samples:
        got = program.run({c: s[v.name] for c, v in zip(program.input_names, model.graph.input)})
        out.append({o: got[c] for o, c in zip(names, program.output_names)})
    return out


def _left(conv, target: str) -> tuple[list | None, int | None]:
    """(layers mixed precision left in higher precision, layers it could have) of a conversion."""
    if target == "coreml":
        a = conv.extra.get("activations") or {}
        kept = a.get("fp16_activations")
        return kept, (a.get("quantized_ops") or 0) + len(kept or [])
    mp = (conv.extra.get("qnn") or {}).get("mixed_precision") or {}
    kept = list(mp.get("a16", [])) + [f"{n} (float)" for n in mp.get("float", [])]
    return kept, None


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
    target = args.target
    base_size = Path(case.path).stat().st_size if target == "qualcomm" else None
    runtime = "HTP simulator (onnxruntime-qnn)" if target == "qualcomm" else "coreml-reference (numpy MIL executor)"
    for spec in specs:
        t0 = time.perf_counter()
        row = {"model": key, "target": target, "precision": spec, "runtime": runtime}
        try:
            conv = convert(model, (calib, search, ref_search), spec, target)
            data = conv.files[conv.file]
            row.update(fm.judge(run_package(data, model, holdout, target), ref, names))
            kept, of = _left(conv, target)
            row.update(size=len(data), base_size=base_size or conv.info.get("fp16_size") or fp16_size,
                       kept=kept, layers=of, mil_ops=conv.info.get("mil_ops"))
            if spec == "fp16":
                fp16_size = len(data)
        except Exception as exc:
            row["error"] = fm.error_text(exc, 300)
        row["seconds"] = time.perf_counter() - t0
        emit(row)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=tuple(PRECISIONS), default="coreml")
    ap.add_argument("--models", default=",".join(families_data.FAMILIES))
    ap.add_argument("--precisions", default=None, help="default: every precision of the target (see PRECISIONS)")
    ap.add_argument("--json", default=None, help="default: bench_families_<target>.json")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--search", type=int, default=32)
    ap.add_argument("--holdout", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.precisions = args.precisions or ",".join(PRECISIONS[args.target])
    path = Path(args.json or f"bench_families_{args.target}.json")
    doc = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    done = {(r["model"], r["precision"]) for r in doc["rows"]}

    def emit(row):
        doc["rows"].append(row)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, default=float))
        os.replace(tmp, path)
        print(json.dumps({k: row.get(k) for k in ("model", "precision", "passed", "cosine", "range_error", "snr_db",
                                                   "size", "base_size", "kept", "error", "seconds")},
                         default=float), flush=True)

    for key in args.models.split(","):
        specs = [s for s in args.precisions.split(",") if (key, s) not in done]
        if specs:
            run_model(key, specs, args, emit)
    print(table(doc["rows"]))
    return 0


def table(rows: list[dict]) -> str:
    lines = ["| model | precision | cosine (worst output) | max err / range | verdict | SNR dB | task figures | "
             "size / base | kept in higher precision | s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['precision']} | — | — | fail | — | — | — | {r['error'][:120]} | "
                         f"{r['seconds']:.0f} |")
            continue
        task = "; ".join(f"{k.split(':')[-1]} {v:.3g}" for k, v in (r.get("task") or {}).items()
                         if isinstance(v, float) and k.split(":")[-1] in ("iou_50", "top1_agreement",
                                                                            "text_agreement", "max_prob_error"))
        size = f"{r['size'] / r['base_size']:.3f}" if r.get("base_size") else "—"
        kept, of = r.get("kept"), r.get("layers")
        left = "—" if kept is None else f"{len(kept)}" + (f" of {of}" if of else "")
        lines.append(f"| {r['model']} | {r['precision']} | {r['cosine']:.4f} | {r['range_error']:.1%} | "
                     f"{'pass' if r['passed'] else 'fail'} | {r['snr_db']:.1f} | {task or '—'} | {size} | {left} | "
                     f"{r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
