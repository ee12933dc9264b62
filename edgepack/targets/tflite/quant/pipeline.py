"""Full-integer int8 for the cpu target: calibrate, quantize, measure on the hold-out, compare every layer
with its float twin, and keep the most sensitive layers in float until the accuracy gate passes (the shared
search in ``edgepack.mixed``).

    result = quantize(model, calib, holdout, reference_of_holdout, gate, QuantOptions())

Accuracy is measured by running each candidate in LiteRT (the runtime's own TFLite session, same layout
handling as on the device) against the fp32 onnxruntime reference on the hold-out split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import onnx
from edgepack_runtime.precisions import Gate

from ....mixed import Trial
from ....model.ort import reference_outputs
from ....verify.layers import rank
from ...base import QuantOptions
from ..convert import lower
from . import ranges as calibrate
from .ladder import climb, rungs
from .layers import debug_layers
from .measure import latency_ms, measure
from . import partitions
from .policy import coarse_outputs, policy_float_nodes, resolve_keep

DEBUG_SAMPLES = 8


@dataclass
class Int8Result:
    model: object                       # targets.tflite.convert.TFLiteModel
    figures: dict                       # parity on the hold-out split (summarize())
    layers: list[dict]                  # debugger rows (graph order)
    ranked: list[dict]                  # debugger rows, worst first
    float_layers: list[dict] = field(default_factory=list)
    int16_layers: list[dict] = field(default_factory=list)    # raised to 16-bit activations (ladder.py)
    tried: list[dict] = field(default_factory=list)
    costs: dict = field(default_factory=dict)
    lowered: object = None
    method: str = ""                    # the calibration method used (auto's choice)
    latency: dict | None = None         # host latency of ``model``, when mixed precision measured it
    source: dict | None = None          # a quantized model's own parameters were used (quant/qdq.py)
    transforms: dict | None = None      # edgepack.transforms record (quant/transforms.py)
    coarse: list = field(default_factory=list)    # outputs kept float for their fixed grid (policy.coarse_outputs)


AUTO_CANDIDATES = ("minmax", "percentile")
AUTO_SAMPLES = 32


def prepare(model: onnx.ModelProto, cal_samples, method: str, *, float_origins=(), precision: str = "int8",
            policy: str = "strict"):
    """(lowered float graph, calibrated ranges, method used).

    ``auto`` calibrates each of ``AUTO_CANDIDATES`` on most of the calibration samples, keeps the one whose
    output is closest (SNR) to fp32 on the rest (samples a range was not fitted on: minmax would otherwise
    always win on its own data), then calibrates it on all of them. The held-out split stays untouched.
    Under the ``cpu`` policy the candidates are judged with the outputs ``coarse`` keeps float in float."""
    low = lower(model)
    names = low.activations()
    stats = calibrate.observe(low.float_bytes(), low.io, cal_samples, names)
    if method != "auto":
        return low, calibrate.choose_ranges(stats, method), method
    if len(cal_samples) < 8:
        return low, calibrate.choose_ranges(stats, "minmax"), "minmax"
    n_probe = min(AUTO_SAMPLES, len(cal_samples) // 4)
    probe, fit = cal_samples[:n_probe], cal_samples[n_probe:]
    reference = reference_outputs(model, probe)
    fit_stats = calibrate.observe(low.float_bytes(), low.io, fit, names)
    best = None
    for candidate in AUTO_CANDIDATES:
        chosen = calibrate.choose_ranges(fit_stats, candidate)
        origins = list(float_origins) + [c["node"] for c in coarse(low, chosen, precision, policy)]
        tm = low.finish(precision, ranges=chosen, float_origins=origins)
        snr = measure(tm.data, low.io, model, probe, reference, Gate())["min_snr_db"]
        if best is None or snr > best[0] + 0.05:
            best = (snr, candidate)
    return low, calibrate.choose_ranges(stats, best[1]), best[1]


def coarse(low, ranges: dict, precision: str, policy: str) -> list[dict]:
    """The model outputs ``policy.coarse_outputs`` keeps float (cpu policy only: ``strict`` keeps every op
    integer)."""
    if policy != "cpu":
        return []
    return coarse_outputs(low.graph, ranges, "int16" if precision == "int16x8" else "int8")


def debug(low, tm, holdout) -> tuple[list[dict], list[dict]]:
    """The per-layer table (graph order) and its ranking, worst first."""
    rows = debug_layers(low.graph, low.float_bytes(), tm.graph, tm.data, low.io, holdout[:DEBUG_SAMPLES])
    return rows, rank(rows)


def quantize(model: onnx.ModelProto, calib: list[dict], holdout: list[dict], reference: list[dict],
             gate: Gate, options: QuantOptions, *, num_threads=None,
             progress: Callable[[str], None] = lambda s: None, qdq=None, precision: str = "int8") -> Int8Result:
    """Quantize, measure on ``holdout`` (``reference``: its fp32 outputs), debug, mix precision.

    ``precision``: int8, or int16x8 (16-bit activations, ``int16.py``). Mixed precision climbs the ladder
    int8 -> int16 -> float per layer (``ladder.py``; int16x8 starts at its second rung).

    ``qdq``: the ``QdqInfo`` of a quantized source model (``model`` is then its dequantized float twin): its
    own scales and zero points replace calibration (``quant/qdq.py``)."""
    transforms, original = None, model
    if qdq is None:
        from .transforms import choose_transforms
        model, transforms = choose_transforms(model, calib, holdout, reference, gate, options, num_threads, progress)
    policy = policy_float_nodes(model, options.policy)
    scales, source, rounded, kept = None, None, set(), []
    if qdq is not None:
        progress("taking the quantized model's own scales and zero points")
        from .qdq import model_quant
        low = lower(model, keep_weights=True, rounded=qdq.activations)
        mq = model_quant(model, qdq, low)
        ranges, method, scales, rounded = mq.ranges, "model", mq.weight_scales, mq.rounded
        policy = policy + [n for n in mq.float_nodes if n not in policy]
        source = {**mq.counts, "float_nodes": [{"node": n, "why": w} for n, w in mq.float_nodes.items()]}
    else:
        progress(f"calibrating activation ranges ({options.method}, {len(calib)} samples)")
        low, ranges, method = prepare(model, calib, options.method, float_origins=policy, precision=precision,
                                      policy=options.policy)
        kept = coarse(low, ranges, precision, options.policy)
        policy = policy + [c["node"] for c in kept if c["node"] not in policy]
    pinned = resolve_keep(options.keep_float, low)

    def make(keep_float, wide=(), dynamic=(), half_floats=False):
        return low.finish(precision, ranges=ranges, io=options.io, keep_float=keep_float, float_origins=policy,
                          weight_scales=scales, wide=wide, rounded=rounded, dynamic=dynamic, half_floats=half_floats)

    def evaluate(tm, n):
        return measure(tm.data, low.io, model, holdout[:n], reference[:n], gate, num_threads)

    trial = Trial(make, evaluate, lambda tm: len(tm.data))
    progress(f"measuring {precision} on {len(holdout)} held-out samples")
    tm, figures = trial.run(pinned)
    progress("comparing every layer with its float twin")
    rows, ranked = debug(low, tm, holdout)
    base, keep, wide = tm, pinned, []
    if not figures["passed"] and options.mixed_precision:
        up = climb(make, evaluate, pinned, ranked, options.max_float_fraction, tm, figures, precision=precision,
                   steps=rungs(options.rungs, options.policy), progress=progress)
        keep, wide, tm, figures = up.keep, up.wide, up.model, up.figures
        trial.tried += up.tried
        if figures["passed"] and precision == "int8" and options.policy == "cpu":
            tm, figures = _lighter_float_layers(make, evaluate, keep, wide, pinned, tm, figures, trial, progress)
    result = Int8Result(tm, figures, rows, ranked, tried=trial.tried, lowered=low, method=method, source=source)
    result.transforms, result.coarse = transforms, kept
    by_tensor = {r["tensor"]: r for r in rows}
    result.float_layers, result.int16_layers = ([{"tensor": t, "origin": by_tensor.get(t, {}).get("origin", ""),
                                                  "op": by_tensor.get(t, {}).get("op", "")} for t in names]
                                                for names in (keep, wide))
    if tm is not base:
        sample = holdout[0]
        result.latency = latency_ms(tm.data, low.io, sample)
        l_int8 = latency_ms(base.data, low.io, sample)["mean"]
        result.costs = {"size_cost": len(tm.data) / len(base.data), "latency_cost": result.latency["mean"] / l_int8,
                        "all_int8_size": len(base.data), "all_int8_latency_ms": l_int8}
    fitted = [n for n in (transforms or {}).get("kept", []) if n in FITTED_TO_INT8
              and (options.transforms or {}).get(n, "auto") == "auto"]
    if fitted and [k for k in keep if k not in pinned] and not result.figures["passed"]:
        result = _without_fitted(result, fitted, original, calib, holdout, reference, gate, options, num_threads,
                                 progress, precision)
    return result


# transforms that move the float model toward its int8 weights (a bias corrected for their rounding, weights
# rounded the fitted way): kept by ``auto`` on the all-int8 model, they are wrong in a layer mixed precision
# makes float, which computes with the float weights; when the search then misses the gate, it runs again
# without them (``_without_fitted``)
FITTED_TO_INT8 = ("adaround", "sum_round", "bias_correction")


def _without_fitted(result: Int8Result, fitted: list[str], model, calib, holdout, reference, gate, options,
                    num_threads, progress, precision) -> Int8Result:
    """The mixed-precision result without the ``fitted`` transforms when that scores better on the held-out
    split (``edgepack.mixed._score``: the gate's verdict first). Tried only when the search missed the gate:
    between two results that both pass, the split's SNR picked the one that did worse on other inputs (PP-OCR
    cls under the issue's gate: 0.9957 -> 0.9533 worst cosine on 32 other images). PP-OCRv4 det: with
    ``bias_correction`` kept, even 121 float layers (60%) did not reach the gate (cosine 0.951); without it,
    13 did."""
    from dataclasses import replace

    from ....mixed import _score
    progress(f"float layers and {', '.join(fitted)} (fitted to int8 weights): trying the search without them")
    off = replace(options, transforms={**(options.transforms or {}), **{n: "off" for n in fitted}})
    alt = quantize(model, calib, holdout, reference, gate, off, num_threads=num_threads, progress=progress,
                   precision=precision)
    brief = lambda f: {k: f.get(k) for k in ("passed", "min_cosine", "min_snr_db")}  # noqa: E731
    chosen, other = (alt, result) if _score(alt.figures) > _score(result.figures) else (result, alt)
    chosen.transforms = {**(chosen.transforms or {}), "float_layers_check": {
        "fitted": fitted, "dropped": chosen is alt, "with": brief(result.figures), "without": brief(alt.figures),
        "float_layers_with": len(result.float_layers), "float_layers_without": len(alt.float_layers)}}
    chosen.tried = other.tried + chosen.tried
    return chosen


def _lighter_float_layers(make, evaluate, keep, wide, pinned, tm, figures, trial, progress):
    """After the float rung passed: the layers it made float get lighter, kept only if the gate still passes
    on every held-out sample. Tried in this order, the first that passes is kept:

    1. the FULLY_CONNECTED ops reading or writing a float layer run XNNPACK's dynamically quantized kernel
       (int8 weights, each input row rounded at run time, float output) and the float32 constants the float
       ops still read are stored as fp16 (``compress.half_float_constants``);
    2. fp16 constants alone (per-row rounding cannot help a row whose channels differ by orders of magnitude).

    MiniLM with 16 float layers: 0.80x fp32 latency -> 0.30x at the same SNR; its float word-embedding table
    halves. The user's own ``--keep-float`` layers never go dynamic (their fp16-stored weights still compute in
    float). Returns (model, figures)."""
    dynamic = [k for k in keep if k not in pinned]
    if not dynamic:
        return tm, figures
    others = [w for w in wide if w not in keep]
    for dyn, label in ((dynamic, "dynamic"), ([], "fp16")):
        progress(f"trying lighter float layers: {label}")
        cand = make(keep, others, dyn, True)
        q = cand.stats["quantization"]
        if not q.get("dynamic_ops") and not q.get("fp16_constants"):
            continue
        got = evaluate(cand, None)
        trial.tried.append({"float_layers": len(keep), "passed": got["passed"], "min_cosine": got["min_cosine"],
                            "min_snr_db": got["min_snr_db"], "size": len(cand.data), "rung": label})
        if got["passed"]:
            return cand, got
    return tm, figures


def describe(result: Int8Result, options: QuantOptions, max_layers: int = 2000) -> dict:
    """The manifest's ``quantization`` record for an int8 target."""
    q = dict(result.model.stats.get("quantization", {}))
    rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in result.layers]
    return {"method": result.method or options.method, "method_requested": options.method, "io": options.io,
            "policy": options.policy, "int8_ops": q.get("int8_ops"), "dynamic_ops": q.get("dynamic_ops", 0),
            "fp16_constants": q.get("fp16_constants", 0),
            "activations": "int16" if result.model.stats.get("precision") == "int16x8" else "int8",
            "float_opcodes": q.get("float_opcodes", []),
            "float_layers": result.float_layers, "int16_layers": result.int16_layers,
            "coarse_outputs": [{**c, "range": [float(f"{v:.4g}") for v in c["range"]],
                                "error": float(f"{c['error']:.4g}")} for c in result.coarse],
            "int16_ops": q.get("int16_ops", 0), "culprits": [r["tensor"] for r in result.ranked[:10]],
            "mixed_precision": {"enabled": options.mixed_precision, "tried": result.tried, **result.costs},
            "source": "model" if result.source else "calibration",
            **({"model": {**result.source, "weight_scales_used": q.get("model_weight_scales", 0)}}
               if result.source else {}),
            **({"transforms": result.transforms} if result.transforms else {}),
            "integer_path": {**partitions.report(result.model.data), "rewrites": q.get("speed", {})},
            "layers": rows[:max_layers]}
