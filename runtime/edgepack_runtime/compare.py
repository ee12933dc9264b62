"""The one comparison kernel: a model's outputs against reference outputs.

Used by the build's verification (gate on the held-out samples), the device's self-check (tolerance on the
bundled samples) and the benchmarks. Cosine alone is fooled by scale errors and by constant outputs, so
every comparison reports cosine, max-abs error and max-abs error relative to the reference's range, and
SNR, over several different inputs; classifier-like outputs also get top-1 (and top-5) agreement.
"""
from __future__ import annotations

import numpy as np

from .kinds import task_figures
from .precisions import Gate, Tolerance

CAP_DB = 100.0


def db(signal: float, noise: float) -> float:
    """10 log10(signal / noise) in [-CAP_DB, CAP_DB] (exact: +CAP_DB; no signal: -CAP_DB)."""
    if noise <= 0.0:
        return CAP_DB
    if signal <= 0.0:
        return -CAP_DB
    return float(min(CAP_DB, 10.0 * np.log10(signal / noise)))


def snr_db(got: np.ndarray, ref: np.ndarray) -> float:
    """10 log10(sum ref^2 / sum (got - ref)^2), capped at 100 dB."""
    r = np.asarray(ref, np.float64)
    return db(float(np.sum(r ** 2)), float(np.sum((np.asarray(got, np.float64) - r) ** 2)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def is_classifier_like(shape) -> bool:
    """[N, K] (or [N, K, 1, 1]) float scores with K >= 2."""
    dims = [d for d in shape[1:] if d != 1]
    return len(shape) >= 2 and len(dims) == 1 and dims[0] >= 2


def compare_output(got: list, ref: list, task: bool = True) -> dict:
    """Figures for one output over several samples (lists of arrays, one per sample): ``cosine`` (worst
    sample; for an output of one value per sample, the cosine of all samples' values together, the cosine of
    one number being only its sign), ``cosine_mean``, ``max_abs``, ``ref_max`` (max |ref|), ``rel_error`` (max_abs / ref_max),
    ``snr_db``, and ``top1_agreement`` / ``top5_agreement`` for classifier-like outputs; ``kind`` and the
    figures of that kind (``kinds.task_figures``: top-k agreement and max probability error for probabilities,
    thresholded-map IoU and region agreement for probability maps; ``task=False`` skips them, as the
    device's self-check does)."""
    g = np.stack([np.asarray(x) for x in got])
    r = np.stack([np.asarray(x) for x in ref])
    if g.shape != r.shape:
        return {"shape_mismatch": [list(g.shape), list(r.shape)], "cosine": 0.0, "ref_max": 0.0,
                "max_abs": float("inf"), "rel_error": float("inf")}
    if r.dtype.kind in "biu":
        agree = float(np.mean(g == r)) if r.size else 1.0
        return {"exact_match": agree, "cosine": 1.0 if agree == 1.0 else agree, "ref_max": 0.0,
                "max_abs": float(np.max(np.abs(g.astype(np.int64) - r.astype(np.int64)), initial=0)),
                "rel_error": 0.0 if agree == 1.0 else 1.0}
    g64, r64 = g.astype(np.float64), r.astype(np.float64)
    if r64.size and np.isnan(r64).all():     # nothing to compare with: the model computes only NaN on this data
        return {"cosine": 0.0, "max_abs": float("inf"), "rel_error": float("inf"), "ref_max": 0.0,
                "snr_db": -CAP_DB, "nan_reference": True}
    if not np.all(np.isfinite(g64) == np.isfinite(r64)):
        return {"cosine": 0.0, "max_abs": float("inf"), "rel_error": float("inf"), "ref_max": 0.0,
                "snr_db": -CAP_DB, "non_finite": True}    # not the 100 dB summarize assumes when SNR is absent
    finite = np.isfinite(r64)
    diff = np.abs(g64[finite] - r64[finite])
    max_abs = float(diff.max(initial=0.0))
    scale = float(np.abs(r64[finite]).max(initial=0.0))
    if r64[0].size == 1 and len(r64) > 1:    # one value per sample: its own cosine is only its sign
        per_sample = [cosine(g64.ravel(), r64.ravel())]
    else:
        per_sample = [cosine(a, b) for a, b in zip(g64, r64)]
    out = {"cosine": float(min(per_sample)), "cosine_mean": float(np.mean(per_sample)),
           "max_abs": max_abs, "ref_max": scale, "rel_error": max_abs / scale if scale > 0 else max_abs,
           "snr_db": snr_db(g64[finite], r64[finite])}
    if r64[0].size == 1 and len(r64) > 1:
        out["cosine_over_samples"] = 1
    if task and np.all(finite):
        out.update(task_figures(g64, r64))
    if is_classifier_like(r.shape[1:]) and "top1_agreement" not in out:
        gs, rs = g64.reshape(g64.shape[0], -1), r64.reshape(r64.shape[0], -1)
        top1 = rs.argmax(axis=1)
        out["top1_agreement"] = float(np.mean(gs.argmax(axis=1) == top1))
        if gs.shape[1] > 5:   # the reference's top-1 class is among the target's top 5
            top5 = np.argsort(-gs, axis=1)[:, :5]
            out["top5_agreement"] = float(np.mean([t in row for t, row in zip(top1, top5)]))
    return out


def failures(figures: dict, t: Gate) -> list[str]:
    """Which parts of the build gate one output misses (empty: it passes)."""
    bad = []
    if figures.get("nan_reference"):
        return ["the fp32 reference itself is all NaN (the model computes NaN on these inputs: check the "
                "calibration data, e.g. an attention mask of 0/1 values)"]
    key = "cosine_mean" if t.cosine_over == "mean" and "cosine_mean" in figures else "cosine"
    if not figures[key] >= t.min_cosine:         # NaN fails too
        bad.append(f"{'mean ' if key == 'cosine_mean' else ''}cosine {figures[key]:.6f} < {t.min_cosine}")
    by_task = t.maps == "task" and (figures.get("kind") == "probability_map"
                                    or ("text_agreement" in figures and t.min_text is not None))
    if figures["rel_error"] > t.max_rel_error and not by_task:
        bad.append(f"relative error {figures['rel_error']:.3g} > {t.max_rel_error}")
    if t.min_snr_db is not None and figures.get("snr_db", 100.0) < t.min_snr_db:
        bad.append(f"SNR {figures['snr_db']:.1f} dB < {t.min_snr_db} dB")
    if t.min_top1 is not None and figures.get("top1_agreement", 1.0) < t.min_top1:
        bad.append(f"top-1 agreement {figures['top1_agreement']:.3f} < {t.min_top1}")
    return bad + task_failures(figures, t)


def task_failures(figures: dict, t: Gate) -> list[str]:
    """The task-figure parts of the gate (``Gate.min_iou``, ``min_region``, ``min_text``, ``max_prob_error``) one
    output misses."""
    bad = []
    for key, at in (("iou_50", 0.5), ("iou_30", 0.3)):
        if t.min_iou is not None and figures.get(key, 1.0) < t.min_iou:
            bad.append(f"map IoU at {at} {figures[key]:.3f} < {t.min_iou}")
    for key in ("region_recall", "region_precision"):
        if t.min_region is not None and figures.get(key, 1.0) < t.min_region:
            bad.append(f"{key.replace('_', ' ')} {figures[key]:.3f} < {t.min_region}")
    if t.min_text is not None and figures.get("text_agreement", 1.0) < t.min_text:
        bad.append(f"same text {figures['text_agreement']:.3f} < {t.min_text}")
    if t.max_prob_error is not None and figures.get("max_prob_error", 0.0) > t.max_prob_error:
        bad.append(f"max probability error {figures['max_prob_error']:.3g} > {t.max_prob_error}")
    return bad


def passes(figures: dict, gate: Gate) -> bool:
    return not failures(figures, gate)


def within(figures: dict, tol: Tolerance | dict) -> bool:
    """Whether one output's figures are within an on-device self-check tolerance."""
    t = tol if isinstance(tol, dict) else tol.as_dict()
    return figures["max_abs"] <= t["atol"] + t["rtol"] * figures["ref_max"] and figures["cosine"] >= t["min_cosine"]


def summarize(per_output: dict[str, dict], gate: Gate) -> dict:
    """Worst-case figures over outputs plus the pass/fail verdict against ``gate``."""
    failed = {name: failures(f, gate) for name, f in per_output.items()}
    out = {"passed": not any(failed.values()), "thresholds": gate.as_dict(),
           "min_cosine": min(f["cosine"] for f in per_output.values()),
           "max_rel_error": max(f["rel_error"] for f in per_output.values()),
           "min_snr_db": min(f.get("snr_db", 100.0) for f in per_output.values()),
           "mean_cosine": min(f.get("cosine_mean", f["cosine"]) for f in per_output.values()),
           "failed": {name: why for name, why in failed.items() if why},
           "outputs": per_output}
    top1 = [f["top1_agreement"] for f in per_output.values() if "top1_agreement" in f]
    if top1:
        out["min_top1_agreement"] = min(top1)
    for key, worst, name in TASK_SUMMARY:
        values = [f[key] for f in per_output.values() if key in f]
        if values:
            out[name] = worst(values)
    return out


TASK_SUMMARY = (("iou_50", min, "min_iou_50"), ("iou_30", min, "min_iou_30"), ("max_prob_error", max, "max_prob_error"),
                ("sequence_agreement", min, "min_sequence_agreement"), ("text_agreement", min, "min_text_agreement"),
                ("region_recall", min, "min_region_recall"),
                ("region_precision", min, "min_region_precision"))


def compare_runs(got: list[dict], reference: list[dict], names) -> dict[str, dict]:
    """``compare_output`` for each output name over paired lists of output dicts."""
    return {n: compare_output([g[n] for g in got], [r[n] for r in reference]) for n in names}
