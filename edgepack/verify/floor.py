"""The reference's own floor: how far the fp32 model moves when its inputs move by less than an int8 step.

An int8 model rounds its input to 256 levels of the input's range, and then every tensor after it. How much
of a quantized model's distance from the reference is that rounding, and how much is the model's own
sensitivity? ``input_floor`` runs the reference model on the held-out inputs with every float input moved
by uniform noise within half an int8 step of that input's range (``dithered``): one rounding-sized change at
one tensor, where an int8 model has hundreds. A gate the float model misses there asks for more than the
model's own stability on those samples (PP-OCRv4 rec on rendered lines: same text on 0.84 of them, worst
cosine 0.93; PP-OCRv4 det: IoU@0.5 0.94). Where the int8 model rounds that input the way the dither moves
it (a float audio feature), that is a bound; on an 8-bit image, whose int8 rounding is nearly exact, it is
the model's sensitivity. Integer inputs (token ids, bytes) and float inputs holding only 0 and 1 (attention
masks, flags: an int8 grid over [0, 1] holds both exactly, and a BERT export multiplies ``1 - mask`` by
-3.4e38, so a moved mask is no rounding-sized change) are not moved; a model with no input to move has no
floor.
"""
from __future__ import annotations

import numpy as np
import onnx

STEPS = 255             # an int8 grid spans the input's range in 255 steps


def dithered(samples: list[dict], span_from: list[dict], seed: int = 0) -> tuple[list[dict], dict[str, float]]:
    """(``samples`` with every float input moved by uniform noise in [-step/2, step/2], {input: step}), the
    step being that input's range (min to max over ``span_from``) over ``STEPS``. Deterministic in
    ``seed``; integer inputs and 0 / 1 float inputs (``binary``) are the same arrays."""
    rng = np.random.default_rng(seed)
    steps: dict[str, float] = {}
    for name, value in samples[0].items():
        if np.asarray(value).dtype.kind == "f" and not binary([s[name] for s in span_from + samples]):
            values = [np.asarray(s[name], np.float64) for s in span_from]
            lo = min(float(np.nanmin(v)) for v in values)
            hi = max(float(np.nanmax(v)) for v in values)
            steps[name] = (hi - lo) / STEPS
    out = []
    for s in samples:
        row = dict(s)
        for name, step in steps.items():
            x = np.asarray(s[name])
            row[name] = (x + rng.uniform(-step / 2, step / 2, x.shape)).astype(x.dtype)
        out.append(row)
    return out, steps


def binary(values: list) -> bool:
    """Whether every value of these arrays is 0 or 1 (a mask or a flag)."""
    return all(np.isin(np.asarray(v), (0.0, 1.0)).all() for v in values)


def input_floor(model: onnx.ModelProto, samples: list[dict], span_from: list[dict],
                seed: int = 0) -> tuple[list[dict], dict[str, float]] | None:
    """(the reference's outputs on the dithered ``samples``, the steps) or None when the model has no float
    input. The outputs are compared with the reference's outputs on ``samples`` by the caller, with the
    gate of the target it judges."""
    from ..model.ort import reference_outputs
    if not samples:
        return None
    moved, steps = dithered(samples, span_from, seed)
    if not steps:
        return None
    return reference_outputs(model, moved), steps


def calibration_floor(model: onnx.ModelProto, cal, progress=lambda s: None):
    """``input_floor`` on a calibration set's held-out samples (the range from all of them), or None when they
    say nothing about the model's use: generated samples, or a hold-out that is the calibration set."""
    if cal.kind == "synthetic" or cal.holdout_is_calib:
        return None
    progress(f"running the fp32 model on inputs moved by half an int8 step ({len(cal.holdout)} samples)")
    return input_floor(model, cal.holdout, cal.all)


FIGURES = ("passed", "min_cosine", "mean_cosine", "max_rel_error", "min_snr_db", "failed", "min_top1_agreement",
           "min_iou_50", "min_text_agreement", "min_region_recall")


def floor_figures(floor: tuple[list[dict], dict], reference: list[dict], names, gate) -> dict:
    """A gate's verdict on ``input_floor``'s outputs against the reference's: the worst figures, what the gate
    misses, and the input steps (the manifest's ``parity.floor``)."""
    from edgepack_runtime.compare import compare_runs, summarize
    runs, steps = floor
    s = summarize(compare_runs(runs, reference, names), gate)
    return {**{k: s[k] for k in FIGURES if k in s}, "input_steps": steps}
