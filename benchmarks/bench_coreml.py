"""The coreml target on every ONNX model of the public corpus: conversion, fp16 parity with onnxruntime
through the MIL reference executor, weight size per compression mode against fp16, and the ANE report.

    python benchmarks/bench_coreml.py [--samples 3] [--models NAME ...] [--modes w8 palettize4 ...]
    python benchmarks/bench_coreml.py --node-tests     # the ONNX node tests of every op the target claims

Baseline and figure come from the same run: onnxruntime on the fp32 ONNX model vs the fp16 ML Program in
the reference executor (cosine, max error relative to the output's max |x|, over ``--samples`` synthetic
samples); the fp16 package's weight bytes vs each compressed package's. The iOS18-only modes (w4-block,
prune-palettize4) are converted for an iOS18 deployment target.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.simplefilter("ignore")

MODES = ("w8", "palettize8", "palettize6", "palettize4", "prune", "w4-block", "prune-palettize4")


def parity(model, data, samples) -> dict:
    """Worst cosine and worst relative max error over samples and outputs (executor vs onnxruntime)."""
    from edgepack_runtime.backends.coreml_ref import load

    from benchmarks.common import cosine
    from edgepack.model.ort import reference_outputs
    program = load(data)
    refs = reference_outputs(model, samples)
    worst_cos, worst_rel, secs, bad = 1.0, 0.0, 0.0, 0
    for x, ref in zip(samples, refs):
        feeds = [np.reshape(x[i.name], s) for i, s in zip(model.graph.input, _input_shapes(program, model))]
        t0 = time.perf_counter()
        got = program.run(dict(zip(program.input_names, feeds)))
        secs += time.perf_counter() - t0
        for (name, want), have in zip(ref.items(), [got[n] for n in program.output_names]):
            if np.asarray(want).dtype.kind != "f":
                worst_rel = max(worst_rel, float(np.mean(np.asarray(have) != want)))
                continue
            if not np.isfinite(np.asarray(have, np.float64)).all():     # fp16 overflow: inf/NaN outputs
                bad += 1
                continue
            worst_cos = min(worst_cos, cosine(have, want))
            scale = max(float(np.abs(want).max()), 1e-12)
            worst_rel = max(worst_rel, float(np.abs(np.asarray(have, np.float64) - want).max()) / scale)
    return {"cosine": worst_cos, "rel": worst_rel, "exec_s": secs / max(len(samples), 1), "nonfinite": bad}


def _input_shapes(program, model):
    shapes = []
    for i in model.graph.input:
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        shapes.append(dims or [1])
    return shapes


def bench(name: str, n: int, modes) -> dict:
    from edgepack.calibration import load_calibration
    from edgepack.errors import EdgepackError
    from edgepack.model import load_model
    from edgepack.targets.base import Job
    from edgepack.targets.coreml import compress
    from edgepack.targets.coreml.convert import lower, package, zip_package
    from edgepack.targets.coreml.target import TARGET
    from edgepack.testing.corpus import INPUT_SHAPES, fetch
    from edgepack_runtime.precisions import gate
    row: dict = {"model": name}
    model = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
    cal = load_calibration(None, model, synthetic_samples=max(n, 8))
    samples = cal.all[:n]
    try:
        t0 = time.perf_counter()
        done = TARGET.convert(model, Job("fp16", SimpleNamespace(calib=cal.all, all=cal.all, holdout=samples), [],
                                         gate("fp16")))
        row["convert_s"] = time.perf_counter() - t0
    except EdgepackError as exc:
        row["error"] = str(exc).splitlines()[0][:160]
        return row
    data = done.files[done.file]
    row.update(ops=sum(v for k, v in done.info["mil_ops"].items() if k != "cast"), size=len(data),
               weights=done.info["weights_bytes"], ane=done.extra["ane"])
    row.update(parity(model, data, samples))
    fp16 = {d: package(lower(model, d), precision="fp16", deployment=d) for d in ("iOS16", "iOS18")}
    row["modes"] = {}
    for mode in modes:
        deployment = "iOS18" if compress.MODES[mode].min_level >= 18 else "iOS16"
        t0 = time.perf_counter()
        compressed = compress.compress(fp16[deployment], mode)
        summary = compress.summarize(fp16[deployment]._mil_program, compressed._mil_program, mode)
        size = len(zip_package(compressed))
        row["modes"][mode] = dict(summary, package_ratio=size / len(zip_package(fp16[deployment])),
                                  seconds=time.perf_counter() - t0)
    return row


def node_tests() -> int:
    """Every ONNX backend node test (onnx 1.22.0) of an op the registry claims, at fp32 through intake,
    the translator and the reference executor, against the test's expected outputs (rtol 1e-3, atol 1e-4).
    Outcomes: pass, refused (preflight or intake names the reason), fail (wrong numbers), error."""
    import collections
    import os
    import tempfile

    import onnx

    from edgepack.errors import EdgepackError, UnsupportedOpsError
    from edgepack.model import load_model
    from edgepack.targets.coreml.convert import lower, package, zip_package
    from edgepack.targets.coreml.target import TARGET
    from edgepack.testing.node_tests import list_node_tests
    from edgepack_runtime.backends.coreml_ref import load
    from tests.e2e.test_node_conformance import freeze_constant_slots
    claimed = {e.op_type for e in TARGET.registry().entries()}
    counts: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    for t in (t for t in list_node_tests(claimed) if not t.skip_reason):
        try:
            inputs, outputs = t.load_data(0)
            model, feeds = freeze_constant_slots(onnx.load(t.model), dict(inputs))
            with tempfile.TemporaryDirectory() as tmp:
                onnx.save(model, os.path.join(tmp, "m.onnx"))
                model = load_model(os.path.join(tmp, "m.onnx"))
            program = load(zip_package(package(lower(model), precision="fp32")))
            shapes = [[d.dim_value for d in i.type.tensor_type.shape.dim] or [1] for i in model.graph.input]
            got = program.run({n: np.reshape(feeds[i.name], s)
                               for n, i, s in zip(program.input_names, model.graph.input, shapes)})
            ok = True
            for (name, want), core in zip(outputs.items(), program.output_names):
                have = np.asarray(got[core])
                ok &= have.shape == want.shape and (
                    np.allclose(have, want, rtol=1e-3, atol=1e-4, equal_nan=True) if want.dtype.kind in "fc"
                    else np.array_equal(have.astype(want.dtype), want))
            outcome = "pass" if ok else "fail"
        except UnsupportedOpsError as exc:
            outcome = "refused"
            reasons[str(exc).split("): ", 1)[-1].split(" (see")[0][:70]] += 1
        except EdgepackError as exc:
            outcome = "refused"
            reasons["intake: " + str(exc).split(": ", 1)[-1][:60]] += 1
        except Exception as exc:     # noqa: BLE001 (counted and named: that is the measurement)
            outcome = "error"
            print(f"  {t.name}: {type(exc).__name__}: {str(exc)[:150]}")
        if outcome == "fail":
            print(f"  {t.name}: wrong numbers")
        counts[outcome] += 1
    print(f"node tests of the {len(claimed)} claimed ops: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    for why, n in reasons.most_common(12):
        print(f"  refused x{n}: {why}")
    return 0


def _ane(ane: dict) -> str:
    fired = ", ".join(f"{f['rule']}×{f['count']}" for f in ane["findings"])
    return f"{ane['verdict']}" + (f" ({fired})" if fired else "")


def main() -> int:
    from edgepack.testing.corpus import entries
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--modes", nargs="*", default=list(MODES))
    ap.add_argument("--node-tests", action="store_true", help="run the ONNX node tests instead")
    args = ap.parse_args()
    if args.node_tests:
        return node_tests()
    names = args.models or [e.name for e in entries() if e.format == "onnx"]
    print("| model | MIL ops | fp16 package | fp16 parity: min cosine / max rel. err | executor s/sample | "
          + " | ".join(args.modes) + " | ANE report |")
    print("|---" * (6 + len(args.modes)) + "|")
    for name in names:
        t0 = time.perf_counter()
        r = bench(name, args.samples, args.modes)
        if "error" in r:
            print(f"| {name} | fails: {r['error']} |" + " |" * (4 + len(args.modes)))
            continue
        ratios = []
        for m in args.modes:
            s = r["modes"][m]
            left = f", {s['left_uncompressed']} left" if s["left_uncompressed"] else ""
            ratios.append(f"{s['ratio']:.3f}{left}" if s["ratio"] is not None else "no weights")
        par = (f"non-finite in {r['nonfinite']} output(s)" if r["nonfinite"] else
               f"{r['cosine']:.6f} / {r['rel']:.2e}")
        print(f"| {name} | {r['ops']} | {r['size'] / 1e6:.2f} MB | {par} | "
              f"{r['exec_s']:.2f} | " + " | ".join(ratios) + f" | {_ane(r['ane'])} |", flush=True)
        modes = ", ".join(f"{m} {r['modes'][m]['seconds']:.0f} s" for m in args.modes)
        print(f"    ({name}: {time.perf_counter() - t0:.1f} s; convert {r['convert_s']:.1f} s; {modes})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
