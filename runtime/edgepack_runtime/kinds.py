"""What an output holds, read from its reference values, and the figures that judge that kind of output.

Cosine and relative error judge any tensor, and so they miss what a task cares about: a recognizer whose
character probabilities are off by 0.4 still scores cosine 0.99, and a text map with a blurred edge scores
cosine 0.93 although every word box is the same. ``output_kind`` reads the reference (stacked over samples,
``[S, ...]``, float) and ``task_figures`` adds the figures of that kind:

- ``probabilities``: every value in [0, 1], and along one axis of length >= 2 every row sums to 1 (within
  ``SUM_TOL``): softmax class scores ``[N, K]``, a recognizer's per-position distributions ``[N, T, C]``,
  a softmax over channels. Axes tried: the last, then the first after the batch. Figures: ``top1_agreement``
  (rows whose arg-max agrees), ``top5_agreement`` (K > 5: the reference's top class among the target's five),
  ``max_prob_error`` (largest probability difference) and, with several rows per sample,
  ``sequence_agreement`` (samples whose every row agrees: a recognizer's same best path) and, when one class
  fills at least 30% of the reference's best paths (a CTC blank), ``text_agreement`` (samples whose best
  paths decode to the same text: repeats merged, blanks dropped; where the blank-to-character boundary moves
  by a position the text is the same).
- ``probability_map``: every value in [0, 1], not a distribution, at least two axes of length >= ``MAP_SIDE``
  (spatial, or time x frequency), some value above 0.5 (something is "on"): a DBNet text-probability map
  ``[N, 1, H, W]``, a sigmoid posteriorgram. Figures: ``iou_50`` / ``iou_30`` (worst sample's intersection
  over union of the maps thresholded at 0.5 / 0.3, DBNet's own binarization threshold; 1 when both are
  empty), ``region_recall`` / ``region_precision`` (worst sample's share of connected regions at 0.3 found
  in the other map, boxes matched at IoU 0.5: ``regions.py``; what a detector's post-processing sees) and
  ``max_prob_error``.
- ``values``: anything else (logits, embeddings, audio features, boxes, images). Logits keep the classifier
  top-1/top-5 figures ``compare.compare_output`` gives classifier-shaped outputs.

Why these rules do not misfire: embeddings and normalised features have negative values or a single long axis;
log-mel and other audio features leave [0, 1]; logits are not bounded. What can still read as a probability
map is a [0, 1] image or a ReLU feature map clipped at 1 with two long axes: its IoU figures are then extra
figures, correct but beside the point, and the gate uses them only with thresholds set for that kind.
"""
from __future__ import annotations

import numpy as np

from .regions import planes, region_agreement

SUM_TOL = 1e-3        # |row sum - 1| of a softmax computed in float32
RANGE_TOL = 1e-6
MAP_SIDE = 8


def _distribution_axis(r: np.ndarray) -> int | None:
    """The per-sample axis (of ``r[0]``) along which every row sums to 1, or None."""
    if r.ndim < 2:
        return None
    for axis in dict.fromkeys((r.ndim - 1, min(2, r.ndim - 1))):
        if r.shape[axis] >= 2 and np.all(np.abs(r.sum(axis=axis) - 1.0) <= SUM_TOL):
            return axis - 1
    return None


def output_kind(ref: np.ndarray) -> str:
    """``probabilities`` | ``probability_map`` | ``values`` for reference values stacked over samples."""
    r = np.asarray(ref)
    if r.dtype.kind != "f" or r.size == 0 or not np.all(np.isfinite(r)):
        return "values"
    if r.min() < -RANGE_TOL or r.max() > 1.0 + RANGE_TOL:
        return "values"
    if _distribution_axis(r.astype(np.float64)) is not None:
        return "probabilities"
    if sum(d >= MAP_SIDE for d in r.shape[1:]) >= 2 and r.max() > 0.5:
        return "probability_map"
    return "values"


def iou(got: np.ndarray, ref: np.ndarray, threshold: float) -> float:
    """Intersection over union of ``got > threshold`` and ``ref > threshold`` (1.0 when both are empty)."""
    a, b = np.asarray(got) > threshold, np.asarray(ref) > threshold
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def _rows(x: np.ndarray, axis: int) -> np.ndarray:
    """[S, rows, K]: the distributions along per-sample ``axis`` as rows."""
    moved = np.moveaxis(x, axis + 1, -1)
    return moved.reshape(moved.shape[0], -1, moved.shape[-1])


def probability_figures(g: np.ndarray, r: np.ndarray, axis: int) -> dict:
    gs, rs = _rows(g, axis), _rows(r, axis)
    top, got_top = rs.argmax(axis=-1), gs.argmax(axis=-1)
    same = got_top == top
    out = {"top1_agreement": float(np.mean(same)), "max_prob_error": float(np.max(np.abs(g - r), initial=0.0))}
    if rs.shape[-1] > 5:
        top5 = np.argsort(-gs, axis=-1)[..., :5]
        out["top5_agreement"] = float(np.mean(np.any(top5 == top[..., None], axis=-1)))
    if rs.shape[1] > 1:
        out["sequence_agreement"] = float(np.mean(np.all(same, axis=1)))
        blank = ctc_blank(top)
        if blank is not None:
            out["text_agreement"] = float(np.mean([ctc_text(a, blank) == ctc_text(b, blank)
                                                   for a, b in zip(got_top, top)]))
    return out


CTC_BLANK_SHARE = 0.3     # a CTC recognizer's best path is mostly blanks (PP-OCR rec: 60-80% of positions)


def ctc_blank(top: np.ndarray) -> int | None:
    """The class that fills at least ``CTC_BLANK_SHARE`` of the reference's best paths ``[S, T]`` (a CTC blank),
    or None when no class does (then the rows are not read as a CTC sequence)."""
    counts = np.bincount(np.asarray(top).ravel())
    k = int(counts.argmax()) if counts.size else 0
    return k if counts.size and counts[k] >= CTC_BLANK_SHARE * top.size and top.shape[-1] > 1 else None


def ctc_text(path: np.ndarray, blank: int) -> tuple:
    """Greedy CTC decoding of one best path: repeats merged, blanks dropped (the class indices of the text)."""
    out, prev = [], None
    for k in np.asarray(path).tolist():
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return tuple(out)


def map_figures(g: np.ndarray, r: np.ndarray) -> dict:
    regions = [region_agreement(a, b, 0.3) for gs, rs in zip(g, r) for a, b in zip(planes(gs), planes(rs))]
    return {"iou_50": min(iou(a, b, 0.5) for a, b in zip(g, r)),
            "iou_30": min(iou(a, b, 0.3) for a, b in zip(g, r)),
            "region_recall": min(x[0] for x in regions), "region_precision": min(x[1] for x in regions),
            "max_prob_error": float(np.max(np.abs(g - r), initial=0.0))}


def task_figures(g: np.ndarray, r: np.ndarray) -> dict:
    """``kind`` and that kind's figures for outputs ``g`` against reference ``r`` (both [S, ...], finite)."""
    kind = output_kind(r)
    if kind == "probabilities":
        return {"kind": kind, **probability_figures(g, r, _distribution_axis(np.asarray(r, np.float64)))}
    if kind == "probability_map":
        return {"kind": kind, **map_figures(g, r)}
    return {"kind": kind}
