"""Our full-integer int8 against onnxruntime's ``quantize_static``, like for like, in two runs.

Run A, "defaults": each quantizer as its user gets it.
  - edgepack: ``QuantOptions()`` = method ``auto`` (best of minmax/percentile), ``cpu`` policy, mixed
    precision on (what ``edgepack build --precision int8`` does).
  - onnxruntime (``ort_qdq.RECIPE``): ``quant_pre_process``, then QDQ, per-channel symmetric int8 weights,
    int8 asymmetric per-tensor activations, MinMax. ``quantize_static``'s own default is per-tensor
    weights; with ``--ort-library-defaults`` that is a second onnxruntime row (``ort_qdq.LIBRARY_DEFAULTS``).
Run B, "same settings", once per calibration method (minmax, percentile):
  - the same method on both sides (onnxruntime's CalibrationMethod.MinMax / .Percentile; percentile made
    to cut 0.01% per side like ours: ``ort_qdq.PERCENTILE_LIKE_EDGEPACK``);
  - the same ONNX nodes kept in float: the ``cpu`` policy's nodes (``policy_float_nodes``) plus the nodes
    run A's mixed precision kept float (``Int8Result.float_layers`` origins). edgepack gets them with mixed
    precision *off* (policy + ``keep_float``), onnxruntime as ``nodes_to_exclude``;
  - per-channel int8 weights, int8 per-tensor activations on both.
  The two mean different things by "a node kept float": ours keeps the node's output tensor float (its
  consumers read float), onnxruntime's keeps the node's arithmetic float but still quantizes its output for
  quantized consumers. ``--with-consumers`` adds an onnxruntime row that also excludes those consumers.
Both runs: the same calibration samples (the same list object goes to both), the same held-out samples,
the same fp32 reference (onnxruntime on the ONNX model) and the same comparison function
(``edgepack_runtime.compare.compare_output``; the worst output counts, as in the build's gate).

Sizes are compared within each file format: our .tflite int8 against our .tflite fp32, onnxruntime's QDQ
.onnx against the fp32 .onnx. Latency is in each quantizer's own runtime against its own fp32 file (LiteRT
with XNNPACK / onnxruntime CPU, 1 thread, alternating rounds): two runtimes, so the two ratios are not
like for like.

    python benchmarks/bench_int8.py --ort-only [--corpus] [--ort-library-defaults]
    python benchmarks/bench_int8_ort.py [--corpus] [--models small_cnn,outlier_cnn]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import ort_qdq  # noqa: E402
from benchmarks.common import interpreter, invoke, paired_latency  # noqa: E402
from edgepack.model.ort import reference_outputs  # noqa: E402
from edgepack.targets.base import QuantOptions  # noqa: E402
from edgepack.targets.tflite.convert import lower  # noqa: E402
from edgepack.targets.tflite.quant.measure import run_tflite  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import quantize  # noqa: E402
from edgepack.targets.tflite.quant.policy import policy_float_nodes  # noqa: E402
from edgepack.targets.tflite.quant.ranges import model_feeds  # noqa: E402
from edgepack_runtime.compare import compare_output, summarize  # noqa: E402
from edgepack_runtime.precisions import PRECISIONS  # noqa: E402

GATE = PRECISIONS["int8"].gate
METHODS_B = ("minmax", "percentile")
POLICY = "cpu"
COMPARED_BY = "edgepack_runtime.compare.compare_output"


def figures(got: list[dict], ref: list[dict], names: list[str], labels=None) -> dict:
    """Held-out figures of one quantized model: ``compare_output`` per output against the fp32 reference,
    worst output (``summarize``, as the build's gate does), plus accuracy against labels."""
    per = {n: compare_output([g[n] for g in got], [r[n] for r in ref]) for n in names}
    s = summarize(per, GATE)
    acc = None
    if labels is not None:
        acc = float(np.mean([np.argmax(g[names[0]]) == y for g, y in zip(got, labels)]))
    return {"cosine_min": s["min_cosine"], "cosine_mean": s["mean_cosine"], "snr_db": s["min_snr_db"],
            "top1": s.get("min_top1_agreement"), "acc": acc, "gate": s["passed"], "compared_by": COMPARED_BY}


def edgepack_int8(model, calib, holdout, reference, options: QuantOptions):
    """Our int8 (the build's entry point)."""
    return quantize(model, calib, holdout, reference, GATE, options)


def ort_int8(model, calib, path, **settings) -> dict:
    """onnxruntime's quantize_static (see ``ort_qdq.ort_quantize``)."""
    return ort_qdq.ort_quantize(model, calib, path, **settings)


def float_sets(model, result) -> tuple[list[str], list[str], list[str]]:
    """(policy nodes, mixed-precision nodes, tensors without an ONNX node) that edgepack kept in float."""
    policy = policy_float_nodes(model, POLICY)
    mixed, loose = [], []
    for f in result.float_layers:
        if f.get("origin"):
            if f["origin"] not in policy and f["origin"] not in mixed:
                mixed.append(f["origin"])
        else:
            loose.append(f["tensor"])
    return policy, mixed, loose


PASS_THROUGH = ("Relu", "Clip", "LeakyRelu", "BatchNormalization", "HardSwish", "HardSigmoid", "Sigmoid",
                "Identity")


def consumers(model, nodes) -> list[str]:
    """ONNX nodes, not among ``nodes``, that read what ``nodes`` produce: through activations and
    normalizations that a converter fuses into the op before them (``PASS_THROUGH``, taken along), up to the
    first other node. Keeping a node float in edgepack keeps its (fused) output tensor float, so its
    consumers read float; onnxruntime's ``nodes_to_exclude`` keeps the node's arithmetic float but its
    output is still quantized for any quantized consumer."""
    keep = set(nodes)
    users: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    found, frontier = [], [o for n in model.graph.node if n.name in keep for o in n.output]
    while frontier:
        tensor = frontier.pop(0)
        for u in users.get(tensor, []):
            if u.name in keep or u.name in found:
                continue
            found.append(u.name)
            if u.op_type in PASS_THROUGH:
                frontier.extend(u.output)
    order = [n.name for n in model.graph.node]
    return sorted(found, key=order.index)


def _litert_latency(fp32, tm, sample, rounds):
    it32, it = interpreter(fp32.data, threads=1), interpreter(tm.data, threads=1)
    a32, a = model_feeds([sample], fp32.io)[0], model_feeds([sample], tm.io)[0]
    base, ms = paired_latency(lambda: invoke(it32, a32), lambda: invoke(it, a), rounds=rounds, budget_s=15)
    return ms / base


def _ort_latency(fp32_bytes, path, sample, rounds):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    s32 = ort.InferenceSession(fp32_bytes, opts, providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    base, ms = paired_latency(lambda: s32.run(None, sample), lambda: s8.run(None, sample), rounds=rounds,
                              budget_s=15)
    return ms / base


def _edgepack_row(name, run, settings, res, fp32_tflite, float_nodes, holdout, ref, names, labels, latency,
                  rounds):
    got = run_tflite(res.model.data, res.model.io, holdout, names)
    float_ops = res.model.stats.get("quantization", {}).get("float_opcodes", [])
    row = {"model": name, "run": run, "quantizer": "edgepack", "settings": settings, "method": res.method,
           "format": ".tflite", "bytes": len(res.model.data), "fp32_bytes": len(fp32_tflite.data),
           "float_nodes": list(float_nodes),
           "notes": f"float opcodes: {','.join(float_ops) or '-'}"
                    + (f"; mixed precision kept: {', '.join(f['origin'] or f['tensor'] for f in res.float_layers)}"
                       if res.float_layers and run == "A" else "")}
    row.update(figures(got, ref, names, labels))
    row["latency"] = _litert_latency(fp32_tflite, res.model, holdout[0], rounds) if latency else None
    return row


def _ort_row(name, run, settings, model, calib, holdout, ref, names, labels, latency, rounds, tmp, **kw):
    row = {"model": name, "run": run, "quantizer": "onnxruntime", "settings": settings,
           "method": kw.get("method", "minmax"), "format": ".onnx QDQ",
           "fp32_bytes": len(model.SerializeToString())}
    path = Path(tmp) / f"{name}.{run}.{settings}.qdq.onnx".replace(" ", "_").replace("/", "_")
    t0 = time.perf_counter()
    try:
        rep = ort_int8(model, calib, path, **kw)
        got = ort_qdq.run_ort(rep["path"], holdout)
    except Exception as exc:  # the baseline's own failures are results too
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        row.update({"bytes": None, "failed": f"onnxruntime failed: {first}", "notes": f"onnxruntime failed: {first}"})
        return row
    left = ort_qdq.float_nodes(rep["path"])
    row.update({"bytes": path.stat().st_size, "float_nodes": rep["excluded"], "ort_float_nodes": left,
                "unmatched": rep["unmatched"], "calibration_samples": rep["calibration_samples"],
                "notes": (f"{time.perf_counter() - t0:.1f}s; nodes left float in the QDQ graph: {len(left)}"
                          + (f"; not found after pre-processing: {', '.join(rep['unmatched'])}"
                             if rep["unmatched"] else ""))})
    row.update(figures(got, ref, names, labels))
    row["latency"] = None
    if latency:
        sample = {k: np.ascontiguousarray(v) for k, v in holdout[0].items()}
        row["latency"] = _ort_latency(model.SerializeToString(), rep["path"], sample, rounds)
    return row


def compare(name, model, calib, holdout, labels=None, *, runs=("A", "B"), methods=METHODS_B,
            library_defaults=False, latency=True, rounds=20, a_result=None, extra_float=(),
            with_consumers=False, report=print) -> list[dict]:
    """Rows of runs A and B for one model (see the module docstring). ``a_result``: an ``Int8Result`` of
    ``QuantOptions()`` already computed on the same data (bench_int8 passes its own). ``extra_float``: more
    ONNX nodes run B keeps float on both sides. ``with_consumers``: one more onnxruntime row (minmax) that
    also excludes the consumers of those nodes, so that their output tensors stay float as in edgepack."""
    names = [o.name for o in model.graph.output]
    ref = reference_outputs(model, holdout)
    fp32_tflite = lower(model).finish("fp32")
    rows = []

    def add(row):
        rows.append(row)
        report(format_row(row))

    common = dict(holdout=holdout, ref=ref, names=names, labels=labels, latency=latency, rounds=rounds)
    res_a = a_result or edgepack_int8(model, calib, holdout, ref, QuantOptions())
    policy, mixed, loose = float_sets(model, res_a)
    mixed += [n for n in extra_float if n not in policy and n not in mixed]
    with tempfile.TemporaryDirectory(prefix="bench_int8_ort_") as tmp:
        if "A" in runs:
            add(_edgepack_row(name, "A", "defaults: auto, cpu policy, mixed precision on", res_a, fp32_tflite,
                              policy + mixed + loose, **common))
            add(_ort_row(name, "A", "recipe: pre-process, QDQ, per-channel, MinMax", model, calib,
                         tmp=tmp, **common, **{k: v for k, v in ort_qdq.RECIPE.items()}))
            if library_defaults:
                add(_ort_row(name, "A", "library defaults: pre-process, QDQ, per-tensor, MinMax", model, calib,
                             tmp=tmp, **common, **ort_qdq.LIBRARY_DEFAULTS))
        if "B" in runs:
            exclude = policy + mixed
            for method in methods:
                opts = QuantOptions(method=method, mixed_precision=False, keep_float=tuple(mixed + loose),
                                    policy=POLICY)
                res = edgepack_int8(model, calib, holdout, ref, opts)
                add(_edgepack_row(name, "B", f"{method}, same float nodes, mixed precision off",
                                  res, fp32_tflite, exclude + loose, **common))
                extra = ort_qdq.PERCENTILE_LIKE_EDGEPACK if method == "percentile" else None
                r = _ort_row(name, "B", f"{method}, same float nodes (nodes_to_exclude)", model, calib,
                             tmp=tmp, **common, method=method, per_channel=True, nodes_to_exclude=exclude,
                             extra_options=extra)
                r["requested_float"] = exclude
                add(r)
                if with_consumers and method == "minmax" and exclude:
                    more = exclude + consumers(model, exclude)
                    r = _ort_row(name, "B", "minmax, same float nodes + their consumers (nodes_to_exclude)",
                                 model, calib, tmp=tmp, **common, method=method, per_channel=True,
                                 nodes_to_exclude=more)
                    r["requested_float"] = more
                    add(r)
    for r in rows:
        r["calibration_count"] = len(calib)
    return rows


HEADER = ("| model | run | quantizer, settings | method | float nodes | min cos | mean cos | SNR dB | top-1 agree "
          "| accuracy | gate | format | bytes (int8 / fp32) | size ratio | latency ratio, own runtime | notes |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def format_row(r: dict) -> str:
    def f(v, fmt):
        return "—" if v is None else format(v, fmt)
    if r.get("bytes") is None:
        return (f"| {r['model']} | {r['run']} | {r['quantizer']}: {r['settings']} | {r['method']} | — | — | — | — | — "
                f"| — | — | {r['format']} | — / {r['fp32_bytes']:,} | — | — | {r.get('notes', '')} |")
    fl = r.get("float_nodes") or []
    runtime = "LiteRT" if r["quantizer"] == "edgepack" else "onnxruntime"
    return (f"| {r['model']} | {r['run']} | {r['quantizer']}: {r['settings']} | {r['method']} | {len(fl)} "
            f"| {r['cosine_min']:.5f} | {r['cosine_mean']:.5f} | {r['snr_db']:.1f} | {f(r['top1'], '.4f')} "
            f"| {f(r['acc'], '.4f')} | {'pass' if r['gate'] else 'fail'} | {r['format']} "
            f"| {r['bytes']:,} / {r['fp32_bytes']:,} | {r['bytes'] / r['fp32_bytes']:.3f} "
            f"| {f(r['latency'], '.2f')} ({runtime}) | {r.get('notes', '')} |")


def fitted_inputs(builder, n_calib=200):
    f = builder()
    return f.name, f.model, f.calibration(n_calib, split="train"), [{f.input_name: x} for x in f.x_test], f.y_test


def main(argv=None) -> int:
    from edgepack.testing import fitted
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="small_cnn,small_transformer,outlier_cnn",
                    help="fitted models (comma-separated; empty for none)")
    ap.add_argument("--corpus", action="store_true", help="also the corpus models of bench_int8")
    ap.add_argument("--runs", default="AB")
    ap.add_argument("--ort-library-defaults", action="store_true")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--with-consumers", action="store_true",
                    help="run B: one more onnxruntime row that also excludes the float nodes' consumers")
    ap.add_argument("--calib", type=int, default=200)
    args = ap.parse_args(argv)
    rows = []
    print(HEADER, flush=True)
    kw = dict(runs=tuple(args.runs), library_defaults=args.ort_library_defaults, latency=not args.no_latency,
              with_consumers=args.with_consumers)
    for m in filter(None, args.models.split(",")):
        name, model, calib, holdout, labels = fitted_inputs(getattr(fitted, m), args.calib)
        rows += compare(name, model, calib, holdout, labels, **kw)
    if args.corpus:
        from benchmarks.bench_int8 import corpus_inputs
        for name, model, calib, holdout, labels in corpus_inputs():
            rows += compare(name, model, calib, holdout, labels, **kw)
    print("\n" + HEADER)
    for r in rows:
        print(format_row(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
