"""Full-integer int8 for the cpu target: calibrate, quantize, measure on the hold-out, debug, and keep
the most sensitive layers in float until the accuracy gate passes (automatic mixed precision).

    result = quantize_cpu(model, cal, reference_holdout, thresholds, QuantOptions())

Accuracy is measured by running each candidate in LiteRT (the runtime's own TFLite session, same
layout handling as on the device) against the fp32 onnxruntime reference on the hold-out split.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx

from .errors import EdgepackError
from .verify.parity import Thresholds, compare_output, summarize

DEBUG_SAMPLES = 8


@dataclass
class QuantOptions:
    method: str = "auto"                # auto (best of minmax/percentile) | minmax | percentile | mse | entropy
    io: str = "float"                   # float | int8 | uint8 model I/O
    mixed_precision: bool = True        # keep sensitive layers float when the gate fails
    max_float_fraction: float = 0.25    # budget: at most this share of quantizable layers kept float
    keep_float: tuple[str, ...] = ()    # tensors (or ONNX node names) the user wants in float
    policy: str = "cpu"                 # cpu: ops without a fast, accurate int8 CPU kernel stay float | strict


@dataclass
class Int8Result:
    model: object                       # targets.tflite.convert.TFLiteModel
    figures: dict                       # parity on the hold-out split (summarize())
    layers: list[dict]                  # debugger rows (graph order)
    ranked: list[dict]                  # debugger rows, worst first
    float_layers: list[dict] = field(default_factory=list)
    tried: list[dict] = field(default_factory=list)
    costs: dict = field(default_factory=dict)
    lowered: object = None
    method: str = ""                    # the calibration method used (auto's choice)


def _c(x) -> np.ndarray:
    """C-contiguous without losing 0-d shapes (np.ascontiguousarray makes 0-d arrays 1-d)."""
    return np.require(x, requirements="C")


def run_tflite(data: bytes, io: dict, samples: list[dict], output_names: list[str],
               num_threads: int | None = None) -> list[dict[str, np.ndarray]]:
    """Run a .tflite model in LiteRT on ONNX-layout samples; outputs back in ONNX layout."""
    from edgepack_runtime.backends.tflite import load_litert
    session = load_litert(data, num_threads=num_threads)
    out = []
    for s in samples:
        arrays = [_c(np.transpose(s[e["name"]], e["perm"]) if e.get("perm") else s[e["name"]])
                  for e in io["inputs"]]
        results = session.run(arrays)
        named = {e["name"]: (np.transpose(r, np.argsort(e["perm"])) if e.get("perm") else r)
                 for e, r in zip(io["outputs"], results)}
        out.append({n: named[n] for n in output_names})
    session.close()
    return out


def latency_ms(data: bytes, io: dict, sample: dict, *, num_threads: int | None = 1, budget_s: float = 1.5) -> dict:
    """Mean/p50/p90 single-sample latency in LiteRT (default delegates), bounded by ``budget_s``."""
    from edgepack_runtime.backends.tflite import load_litert
    session = load_litert(data, num_threads=num_threads)
    arrays = [_c(np.transpose(sample[e["name"]], e["perm"]) if e.get("perm") else sample[e["name"]])
              for e in io["inputs"]]
    session.run(arrays)
    times, start = [], time.perf_counter()
    while len(times) < 3 or (len(times) < 200 and time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        session.run(arrays)
        times.append((time.perf_counter() - t0) * 1e3)
    session.close()
    t = np.asarray(times)
    return {"mean": float(t.mean()), "p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
            "runs": len(times), "threads": num_threads}


def measure(data, io, model: onnx.ModelProto, samples, reference, thresholds: Thresholds, num_threads=None) -> dict:
    names = [o.name for o in model.graph.output]
    got = run_tflite(data, io, samples, names, num_threads)
    per_output = {n: compare_output([g[n] for g in got], [r[n] for r in reference]) for n in names}
    return summarize(per_output, thresholds)


def _resolve_keep(names, lowered) -> list[str]:
    """User ``keep_float`` entries may name tensors or ONNX nodes (all outputs of the ops they became)."""
    by_origin: dict[str, list[str]] = {}
    for op in lowered.graph.ops:
        by_origin.setdefault(op.origin, []).extend(op.outputs)
    out = []
    for n in names:
        if n in lowered.graph.tensors:
            out.append(n)
        elif n in by_origin:
            out.extend(t for t in by_origin[n] if lowered.graph.tensors[t].dtype == np.float32)
        else:
            raise EdgepackError(f"--keep-float '{n}' is neither a tensor nor a node of the model",
                                hint="use a node name from `edgepack debug-quant` output")
    return out


POLICIES = ("cpu", "strict")


def policy_float_nodes(model: onnx.ModelProto, policy: str) -> list[str]:
    """ONNX nodes the int8 ``policy`` keeps in float.

    ``cpu`` (LiteRT with XNNPACK): LayerNormalization (its variance/rsqrt chain loses the most accuracy in
    int8), Softmax, and MatMul of two activations (attention): XNNPACK has no int8 kernels for those, so in
    int8 they fall back to slow reference kernels and split the delegated graph (measured on the fitted
    transformer: 2.4x slower than fp32 all-int8, 0.91x with these float). ``strict``: every op that has an
    int8 kernel is quantized (integer-only accelerators)."""
    if policy not in POLICIES:
        raise EdgepackError(f"int8 policy '{policy}' is not one of {', '.join(POLICIES)}")
    if policy == "strict":
        return []
    consts = {i.name for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax"):
            out.append(node.name)
        elif node.op_type == "MatMul" and not any(i in consts for i in node.input):
            out.append(node.name)
    return out


AUTO_CANDIDATES = ("minmax", "percentile")
AUTO_SAMPLES = 32


def prepare(model: onnx.ModelProto, cal_samples, method: str, *, float_origins=()):
    """(lowered float graph, calibrated ranges, method used).

    ``auto`` calibrates each of ``AUTO_CANDIDATES`` on most of the calibration samples, keeps the one whose
    output is closest (SNR) to fp32 on the rest (samples a range was not fitted on: minmax would otherwise
    always win on its own data), then calibrates it on all of them. The held-out split stays untouched."""
    from .targets.tflite import calibrate
    from .targets.tflite.convert import lower
    low = lower(model)
    names = low.activations()
    stats = calibrate.observe(low.float_bytes(), low.io, cal_samples, names)
    if method != "auto":
        return low, calibrate.choose_ranges(stats, method), method
    if len(cal_samples) < 8:
        return low, calibrate.choose_ranges(stats, "minmax"), "minmax"
    from .model.ort import run_model
    outputs = [o.name for o in model.graph.output]
    n_probe = min(AUTO_SAMPLES, len(cal_samples) // 4)
    probe, fit = cal_samples[:n_probe], cal_samples[n_probe:]
    reference = [dict(zip(outputs, run_model(model, s, outputs))) for s in probe]
    fit_stats = calibrate.observe(low.float_bytes(), low.io, fit, names)
    best = None
    for candidate in AUTO_CANDIDATES:
        tm = low.finish("int8", ranges=calibrate.choose_ranges(fit_stats, candidate), float_origins=float_origins)
        snr = measure(tm.data, low.io, model, probe, reference, Thresholds())["min_snr_db"]
        if best is None or snr > best[0] + 0.05:
            best = (snr, candidate)
    return low, calibrate.choose_ranges(stats, best[1]), best[1]


def debug(low, ranges, tm, holdout) -> tuple[list[dict], list[dict]]:
    from .targets.tflite.debug import debug_layers, rank
    rows = debug_layers(low.graph, low.float_bytes(), tm.graph, tm.data, low.io, holdout[:DEBUG_SAMPLES])
    return rows, rank(rows)


def quantize_cpu(model: onnx.ModelProto, calib: list[dict], holdout: list[dict], reference: list[dict],
                 thresholds: Thresholds, options: QuantOptions, *, num_threads=None,
                 progress: Callable[[str], None] = lambda s: None) -> Int8Result:
    """Quantize, measure on ``holdout`` (``reference``: its fp32 outputs), debug, mix precision."""
    progress(f"calibrating activation ranges ({options.method}, {len(calib)} samples)")
    policy = policy_float_nodes(model, options.policy)
    low, ranges, method = prepare(model, calib, options.method, float_origins=policy)
    keep = _resolve_keep(options.keep_float, low)

    def finish(keep_float):
        return low.finish("int8", ranges=ranges, io=options.io, keep_float=keep_float, float_origins=policy)

    tm = finish(keep)
    progress(f"measuring int8 on {len(holdout)} held-out samples")
    figures = measure(tm.data, low.io, model, holdout, reference, thresholds, num_threads)
    tried = [_attempt(keep, figures, tm)]
    progress("comparing every layer with its float twin")
    rows, ranked = debug(low, ranges, tm, holdout)
    base = tm
    if not figures["passed"] and options.mixed_precision:
        candidates = [r for r in ranked if r["tensor"] not in keep]
        budget = max(1, int(options.max_float_fraction * len(candidates)))
        progress("gate failed: measuring how much each suspect layer costs")
        best = (keep, tm, figures)
        order = _by_sensitivity(finish, keep, candidates, model, low, holdout, reference, thresholds, num_threads)
        k = 1
        while k <= min(budget, len(order)) and not figures["passed"]:
            extra = [r["tensor"] for r in order[:k]]
            progress(f"gate failed: keeping {len(keep) + k} layer(s) in float")
            tm = finish(keep + extra)
            figures = measure(tm.data, low.io, model, holdout, reference, thresholds, num_threads)
            tried.append(_attempt(keep + extra, figures, tm))
            if _score(figures) > _score(best[2]):
                best = (keep + extra, tm, figures)
            if figures["passed"]:
                keep = keep + extra
                break
            k = k + 1 if k < 4 else max(k + 1, int(k * 1.5))
        if not figures["passed"]:      # budget spent: ship (with --allow-mismatch) the best attempt seen
            keep, tm, figures = best
        if figures["passed"] and len(keep) > 1:
            keep, tm, figures = _prune(finish, keep, options.keep_float, low, model, holdout, reference,
                                       thresholds, num_threads, tried, tm, figures)
    result = Int8Result(tm, figures, rows, ranked, tried=tried, lowered=low, method=method)
    if keep:
        by_tensor = {r["tensor"]: r for r in rows}
        result.float_layers = [{"tensor": t, "origin": by_tensor.get(t, {}).get("origin", ""),
                                "op": by_tensor.get(t, {}).get("op", "")} for t in keep]
    if tm is not base:
        sample = holdout[0]
        l_mixed = latency_ms(tm.data, low.io, sample)["mean"]
        l_int8 = latency_ms(base.data, low.io, sample)["mean"]
        result.costs = {"size_cost": len(tm.data) / len(base.data), "latency_cost": l_mixed / l_int8,
                        "all_int8_size": len(base.data), "all_int8_latency_ms": l_int8}
    return result


SENSITIVITY_CANDIDATES = 16    # suspects (by the debugger's ranking) whose float version is measured one by one
SENSITIVITY_SAMPLES = 16


def _by_sensitivity(finish, keep, candidates, model, low, holdout, reference, thresholds, num_threads):
    """The debugger's suspects re-ordered by what keeping each alone in float buys at the model output
    (SNR on a few held-out samples); the rest follow in the debugger's order."""
    head, tail = candidates[:SENSITIVITY_CANDIDATES], candidates[SENSITIVITY_CANDIDATES:]
    sub, ref = holdout[:SENSITIVITY_SAMPLES], reference[:SENSITIVITY_SAMPLES]
    scored = []
    for i, r in enumerate(head):
        tm = finish(keep + [r["tensor"]])
        fig = measure(tm.data, low.io, model, sub, ref, thresholds, num_threads)
        r["float_gain"] = {"snr_db": fig["min_snr_db"], "cosine": fig["min_cosine"]}
        scored.append((-fig["min_snr_db"], -fig["min_cosine"], i, r))
    return [r for *_, r in sorted(scored, key=lambda x: x[:3])] + tail


def _prune(finish, keep, pinned, low, model, holdout, reference, thresholds, num_threads, tried, tm, figures):
    """Drop kept-float layers the gate does not need (last added first)."""
    pinned = set(_resolve_keep(pinned, low))
    for name in reversed(list(keep)):
        if name in pinned:
            continue
        trial = [n for n in keep if n != name]
        cand = finish(trial)
        fig = measure(cand.data, low.io, model, holdout, reference, thresholds, num_threads)
        tried.append(_attempt(trial, fig, cand))
        if fig["passed"]:
            keep, tm, figures = trial, cand, fig
    return keep, tm, figures


def _score(figures) -> tuple:
    return (figures["passed"], -len(figures.get("failed", {})), figures["min_snr_db"], figures["min_cosine"])


def _attempt(keep, figures, tm) -> dict:
    return {"float_layers": len(keep), "passed": figures["passed"], "min_cosine": figures["min_cosine"],
            "min_snr_db": figures["min_snr_db"], "size": len(tm.data)}


def describe(result: Int8Result, options: QuantOptions, max_layers: int = 2000) -> dict:
    """The manifest's ``quantization`` record for an int8 target."""
    q = dict(result.model.stats.get("quantization", {}))
    rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in result.layers]
    return {"method": result.method or options.method, "method_requested": options.method, "io": options.io,
            "policy": options.policy, "int8_ops": q.get("int8_ops"),
            "float_opcodes": q.get("float_opcodes", []),
            "float_layers": result.float_layers, "culprits": [r["tensor"] for r in result.ranked[:10]],
            "mixed_precision": {"enabled": options.mixed_precision, "tried": result.tried, **result.costs},
            "layers": rows[:max_layers]}
