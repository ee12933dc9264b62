"""int8 on the families of issue #14, per model and per precision, against fp32 and onnxruntime, in one run.

Per model (``families_data.FAMILIES``: PP-OCR det/rec/cls, MiniLM, openwakeword embedding + wake-word head,
magika, basic-pitch, the Smart Turn QDQ encoder) with realistic inputs: ``--calib`` calibration samples, a
search split (``--search``: what the build holds out for its gate and mixed-precision search) and a disjoint
held-out set (``--holdout``) that only judges. Per precision, through the cpu target's own entry point
(``TARGET.convert``, what ``edgepack build`` runs): the issue's verdict (worst-sample cosine >= 0.99 and max
error <= 10% of the output's range, worst output; ``families_measure.judge``), SNR, task-aware figures when
``compare_output`` gives them, size against fp32, LiteRT latency against fp32 (1 thread, alternating rounds),
QUANTIZE/DEQUANTIZE counts and the XNNPACK partitions (when ``quant/partitions.py`` exists), the layers mixed
precision kept and the worst layers of the debugger. Then onnxruntime's quantize_static on the same data
(``families_measure.ort_baseline``). For the QDQ model the reference is onnxruntime running the QDQ model
itself (as ``edgepack build`` judges it), and there is no quantize_static row.

Precisions: ``fp32``, ``int8`` (mixed precision off), ``int8-mixed`` (on: the build's default), and whatever
the target offers later (``int16x8``, ``int16x8-mixed``...): defaults are read from ``TARGET.precisions``.
``NAME:field=value,...`` sets ``QuantOptions`` fields (e.g. ``int8:method=minmax``, ``int8:transforms.cle=on``);
fields that other work adds to ``QuantOptions`` with an ``auto`` default get an extra ``int8-mixed:<field>=off``
row each, and each transform of ``edgepack.transforms`` one row flipped from its default (its gain measured
separately).

    python benchmarks/bench_int8_families.py [--models ppocr_rec,minilm] [--precisions fp32,int8,int8-mixed]
        [--json out.json] [--calib 32] [--search 8] [--holdout 8] [--model-timeout 900]

Each model runs in its own process (a crash or ``--model-timeout`` loses that model only); ``--json`` is
rewritten after every row, and models already complete in it are skipped (resume).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import families_data, families_measure as fm  # noqa: E402
from benchmarks.families_report import table  # noqa: E402

BASE_FIELDS = {"method", "io", "mixed_precision", "max_float_fraction", "keep_float", "policy"}


FLIPS = {"rungs": "int16+float"}    # the non-default value of an ``auto`` field when it is not "off"


def default_precisions() -> list[str]:
    """fp32, then every quantized precision of the cpu target with mixed precision off and on, then one row per
    ``auto`` QuantOptions field turned off."""
    from edgepack.targets.base import QuantOptions
    from edgepack.targets.tflite.target import TARGET
    out = ["fp32"]
    for p in TARGET.precisions:
        if p.startswith("int") and p != "int8-dynamic":
            out += [p, f"{p}-mixed"]
    for f in dataclasses.fields(QuantOptions):
        if f.name not in BASE_FIELDS and f.default == "auto":
            out.append(f"int8-mixed:{f.name}={FLIPS.get(f.name, 'off')}")
    if "transforms" in {f.name for f in dataclasses.fields(QuantOptions)}:
        from edgepack import transforms
        for name in transforms.ORDER:       # each transform's gain: all at their defaults, then this one off/on
            flip = "on" if transforms.DEFAULTS.get(name) == "off" else "off"
            out.append(f"int8-mixed:transforms.{name}={flip}")
    return out


def parse_spec(spec: str):
    """``int8-mixed:method=minmax`` -> ("int8", QuantOptions(mixed_precision=True, method="minmax"))."""
    from edgepack.targets.base import QuantOptions
    name, _, settings = spec.partition(":")
    mixed = name.endswith("-mixed")
    precision = name[:-len("-mixed")] if mixed else name
    fields = {f.name: f for f in dataclasses.fields(QuantOptions)}
    kw = {"mixed_precision": mixed}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        value = value.replace("+", ",")         # a comma-separated value inside the spec: int16+float
        if key.startswith("transforms.") and "transforms" in fields:     # a dict field: one entry per item
            kw.setdefault("transforms", {})[key.split(".", 1)[1]] = value
            continue
        if key not in fields:
            raise SystemExit(f"QuantOptions has no field {key!r} (fields: {', '.join(fields)})")
        default = fields[key].default
        kw[key] = (value.lower() in ("1", "true", "on", "yes")) if isinstance(default, bool) else \
            type(default)(value) if isinstance(default, (int, float)) else value
    return precision, QuantOptions(**kw)


def _conversion(model, case, split, precision, options, gate_kind):
    from edgepack.calibration import CalibrationSet
    from edgepack.targets.base import Job
    from edgepack.targets.tflite.target import TARGET
    from edgepack_runtime.precisions import gate
    calib, search, ref_search = split
    cal = CalibrationSet(calib, search, "given", None, [], None, len(search) / (len(calib) + len(search)))
    judged = "int8" if case.quantized and precision in ("fp32", "fp16") else precision
    g = issue_gate(judged) if gate_kind == "issue" else gate(judged)
    return TARGET.convert(model, Job(precision, cal, ref_search, g, options))


MIN_ISSUE_COS, MAX_ISSUE_REL = 0.99, 0.10


def issue_gate(precision: str):
    """The issue's verdict as a build asks for it (``--min-cosine 0.99 --max-rel-error 0.1 --cosine-over
    min``): the precision's gate with those three replaced; its other parts stay (int8's SNR, probability maps
    judged by their regions and CTC outputs by their text instead of the max error)."""
    from dataclasses import replace

    from edgepack_runtime.precisions import gate
    return replace(gate(precision), min_cosine=MIN_ISSUE_COS, max_rel_error=MAX_ISSUE_REL, cosine_over="min")


def _quant_notes(conv) -> dict:
    q = conv.extra.get("quantization") or {}
    out = {"method": q.get("method"), "float_layers": [f.get("origin") or f.get("tensor")
                                                       for f in q.get("float_layers", [])],
           "culprits": q.get("culprits", [])[:3], "source": q.get("source")}
    out["transforms"] = q.get("transforms")          # what edgepack.transforms tried and kept (json only)
    out["int16_layers"] = [f.get("origin") or f.get("tensor") for f in q.get("int16_layers", [])]
    mp = q.get("mixed_precision") or {}
    out["mixed_tried"] = len(mp.get("tried") or [])
    return out


def run_model(key: str, specs: list[str], args, emit) -> None:
    """Every row of one model; ``emit(row)`` is called after each."""
    from edgepack.model import load_model
    from edgepack.model.ort import reference_outputs
    from edgepack.targets.tflite.quant.measure import run_tflite
    t0 = time.perf_counter()
    n_cal, n_search, n_hold = args.calib, args.search, args.holdout
    case = families_data.case(key, n_cal + n_search + n_hold, seed=args.seed)
    model = load_model(case.path, input_shapes=case.input_shapes)
    from edgepack.model.qdq import is_quantized
    case.quantized = is_quantized(model)
    calib, search = case.samples[:n_cal], case.samples[n_cal:n_cal + n_search]
    holdout = case.samples[n_cal + n_search:]
    names = [o.name for o in model.graph.output]
    ref_search, ref = reference_outputs(model, search), reference_outputs(model, holdout)
    base = {"model": key, "file": case.name, "data": case.data, "notes_case": case.notes,
            "calib": n_cal, "search": n_search, "holdout": n_hold,
            "reference": "onnxruntime on the QDQ model" if case.quantized else "onnxruntime fp32"}
    emit({**base, "precision": "setup", "seconds": time.perf_counter() - t0})
    fp32 = None
    if not specs and not args.no_ort:           # --precisions "": the onnxruntime row alone
        emit({**base, **fm.ort_baseline(model, calib, holdout, ref, names, rounds=args.rounds)})
    for spec in specs:
        t1 = time.perf_counter()
        row = {**base, "precision": spec, "runtime": "LiteRT"}
        try:
            precision, options = parse_spec(spec)
            conv = _conversion(model, case, (calib, search, ref_search), precision, options, args.search_gate)
            data = conv.files[conv.file]
            got = run_tflite(data, conv.io, holdout, names)
            row.update(fm.judge(got, ref, names))
            row.update(size=len(data), **fm.ops_left(data), **_quant_notes(conv))
            if precision == "fp32" and fp32 is None:
                fp32 = (data, conv.io)
            if fp32 is not None:
                row["fp32_size"] = len(fp32[0])
                row["latency"] = fm.litert_latency(fp32, (data, conv.io), holdout[0], rounds=args.rounds)
        except Exception as exc:
            row["error"] = fm.error_text(exc, 200)
        row["seconds"] = time.perf_counter() - t1
        emit(row)
        if spec == specs[0] and not args.no_dither:
            floor = fm.dither_floor(model, calib, holdout, ref, names, seed=args.seed)
            if floor is not None:
                emit({**base, **floor})
        if spec == specs[0] and not args.no_ort:
            if case.quantized:     # no quantize_static row; the reference's own floor instead
                emit({**base, **fm.ort_fused(model, holdout, ref, names)})
            else:
                emit({**base, **fm.ort_baseline(model, calib, holdout, ref, names, rounds=args.rounds)})


def _load(path: Path) -> dict:
    if path.is_file():
        return json.loads(path.read_text())
    return {"runs": {}}


def _save(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, path)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent).stdout.strip()
    except OSError:
        return "?"


def child(args) -> int:
    """Run one model (``--one``), appending rows to the json file after each."""
    path = Path(args.json)
    specs = [s for s in args.precisions.split(",") if s]

    def emit(row):
        doc = _load(path)
        doc["runs"].setdefault(args.one, {"rows": [], "done": False})["rows"].append(row)
        _save(path, doc)
        print(json.dumps({k: row.get(k) for k in ("model", "precision", "passed", "cosine", "range_error",
                                                   "error", "seconds")}, default=float), flush=True)

    run_model(args.one, specs, args, emit)
    doc = _load(path)
    doc["runs"][args.one]["done"] = True
    _save(path, doc)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(families_data.FAMILIES))
    ap.add_argument("--precisions", default=None, help="default: " + ",".join(default_precisions()))
    ap.add_argument("--json", default="bench_int8_families.json")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--search", type=int, default=8)
    ap.add_argument("--holdout", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=20, help="alternating latency rounds")
    ap.add_argument("--search-gate", choices=("build", "issue"), default="build",
                    help="gate the build's search uses: the precision's own, or the issue's (worst-sample cos "
                         "0.99, rel 0.1, the precision's other parts kept: --cosine-over min in a build)")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--no-dither", action="store_true",
                    help="skip the fp32-dither row (the reference on inputs moved by half an int8 step)")
    ap.add_argument("--model-timeout", type=float, default=900.0, help="seconds per model (its own process)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.precisions is None:
        args.precisions = ",".join(default_precisions())
    if args.one:
        return child(args)
    path = Path(args.json)
    doc = _load(path)
    doc.update(commit=_commit(), precisions=args.precisions.split(","),
               settings={k: getattr(args, k) for k in ("calib", "search", "holdout", "seed", "rounds", "search_gate")})
    _save(path, doc)
    print(f"commit {doc['commit']}; precisions {args.precisions}", flush=True)
    for key in args.models.split(","):
        if doc["runs"].get(key, {}).get("done"):
            print(f"{key}: already done in {path}", flush=True)
            continue
        doc["runs"].pop(key, None)
        _save(path, doc)
        cmd = [sys.executable, __file__, "--one", key, *_forward(argv)]
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(cmd, timeout=args.model_timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        doc = _load(path)
        if rc != 0:
            doc["runs"].setdefault(key, {"rows": [], "done": False})["stopped"] = \
                f"{'timed out' if rc == 'timeout' else f'exit {rc}'} after {time.perf_counter() - t0:.0f} s"
            _save(path, doc)
        print(f"{key}: {'ok' if rc == 0 else rc} in {time.perf_counter() - t0:.0f} s", flush=True)
    print(table(_load(path)))
    return 0


def _forward(argv) -> list[str]:
    argv = list(sys.argv[1:] if argv is None else argv)
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a in ("--models", "--model-timeout"):
            skip = True
            continue
        if a.startswith(("--models=", "--model-timeout=")):
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
