"""Region-level agreement of two probability maps (numpy only): what a detector's post-processing would find.

A detector such as DBNet thresholds its probability map and takes the connected regions as text boxes, so a
map whose boundary pixels moved but whose regions did not is the same answer. ``region_agreement`` labels the
4-connected regions of both maps thresholded at ``threshold`` (union-find with pointer jumping, vectorised),
drops regions under ``MIN_AREA`` pixels (specks no detector reports), and matches their bounding boxes at box IoU >= ``MATCH_IOU``:
recall is the share of the reference's regions the target reproduces, precision the share of the target's
regions the reference has (1.0 when there is nothing to find).
"""
from __future__ import annotations

import numpy as np

MIN_AREA = 9          # DBNet's post-processing drops boxes whose shorter side is under 3 px
MATCH_IOU = 0.5


def _roots(parent: np.ndarray) -> np.ndarray:
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            return parent
        parent = nxt


def label(mask: np.ndarray) -> np.ndarray:
    """Component id per pixel of a 2-D boolean mask (-1 off the mask), 4-connectivity."""
    h, w = mask.shape
    idx = np.arange(h * w).reshape(h, w)
    pairs = [(idx[:, :-1][mask[:, :-1] & mask[:, 1:]], idx[:, 1:][mask[:, :-1] & mask[:, 1:]]),
             (idx[:-1, :][mask[:-1, :] & mask[1:, :]], idx[1:, :][mask[:-1, :] & mask[1:, :]])]
    on = np.flatnonzero(mask)
    pos = np.full(h * w, -1)
    pos[on] = np.arange(len(on))           # union-find over the mask's pixels only
    a = pos[np.concatenate([p[0] for p in pairs])]
    b = pos[np.concatenate([p[1] for p in pairs])]
    parent = np.arange(len(on))
    while True:
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            break
        np.minimum.at(parent, np.maximum(pa, pb), np.minimum(pa, pb))
        parent = _roots(parent)
    out = np.full(h * w, -1)
    out[on] = on[parent]                    # a region's id: its first pixel's flat index
    return out.reshape(h, w)


def boxes(mask: np.ndarray) -> np.ndarray:
    """[n, 4] boxes (y0, x0, y1, x1, end exclusive) of the mask's regions of at least ``MIN_AREA`` pixels."""
    lab = label(mask)
    on = lab >= 0
    ids, inverse, area = np.unique(lab[on], return_inverse=True, return_counts=True)
    ys, xs = np.nonzero(on)
    n = len(ids)
    y0, x0 = np.full(n, ys.max(initial=0) + 1), np.full(n, xs.max(initial=0) + 1)
    y1, x1 = np.zeros(n, np.int64), np.zeros(n, np.int64)
    np.minimum.at(y0, inverse, ys)
    np.minimum.at(x0, inverse, xs)
    np.maximum.at(y1, inverse, ys + 1)
    np.maximum.at(x1, inverse, xs + 1)
    keep = area >= MIN_AREA
    return np.stack([y0, x0, y1, x1], axis=1)[keep]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] IoU of boxes (y0, x0, y1, x1)."""
    h = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    w = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = h * w
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1)


def region_agreement(got: np.ndarray, ref: np.ndarray, threshold: float = 0.3) -> tuple[float, float]:
    """(recall, precision) of the target's regions against the reference's (2-D maps)."""
    rb, gb = boxes(np.asarray(ref) > threshold), boxes(np.asarray(got) > threshold)
    if len(rb) == 0 or len(gb) == 0:
        return (1.0 if len(rb) == 0 else 0.0), (1.0 if len(gb) == 0 else 0.0)
    m = box_iou(rb, gb) >= MATCH_IOU
    return float(m.any(axis=1).mean()), float(m.any(axis=0).mean())


def planes(x: np.ndarray) -> list[np.ndarray]:
    """The 2-D maps of one sample: its last two axes, one plane per index of the leading ones."""
    x = np.asarray(x)
    return list(x.reshape(-1, *x.shape[-2:])) if x.ndim >= 2 else [x.reshape(1, -1)]
