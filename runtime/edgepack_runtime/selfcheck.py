"""Compare outputs with reference outputs: max-abs, relative max error and cosine, with tolerances.

Cosine alone is fooled by scale errors and by tiny outputs, so a check passes only when both hold:
``max_abs <= atol + rtol * max|reference|`` and ``cosine >= min_cosine``.
"""
from __future__ import annotations

import numpy as np

# Default tolerances by target precision: (rtol, atol, min_cosine).
TOLERANCES = {
    "fp32": (1e-3, 1e-5, 0.9999),
    "fp16": (1e-2, 1e-3, 0.999),
    "int8": (0.1, 1e-2, 0.98),
}


def tolerance(precision: str, rtol=None, atol=None, min_cosine=None, recorded: dict | None = None) -> dict:
    """The tolerance for a precision (unknown precisions get int8's), with explicit overrides.

    ``recorded``: the target's ``self_check`` entry, written by the build from the deviation it measured on
    the bundled samples (with a margin); it takes precedence over the per-precision default."""
    base = TOLERANCES.get(precision, TOLERANCES["int8"])
    if recorded:
        base = tuple(recorded.get(k, b) for k, b in zip(("rtol", "atol", "min_cosine"), base))
    chosen = [c if c is not None else b for c, b in zip((rtol, atol, min_cosine), base)]
    return dict(zip(("rtol", "atol", "min_cosine"), chosen))


def compare(got: np.ndarray, ref: np.ndarray) -> dict:
    """``{"max_abs", "max_rel", "cosine", "ref_max"}`` between one output and its reference."""
    a = np.asarray(got, dtype=np.float64).ravel()
    b = np.asarray(ref, dtype=np.float64).ravel()
    max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
    ref_max = float(np.max(np.abs(b))) if b.size else 0.0
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        cosine = 1.0
    elif na == 0.0 or nb == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.dot(a, b) / (na * nb))
    return {"max_abs": max_abs, "max_rel": max_abs / ref_max if ref_max else max_abs,
            "cosine": cosine, "ref_max": ref_max}


def worst(a: dict | None, b: dict) -> dict:
    """Combine two ``compare`` results, keeping the worst of each figure."""
    if a is None:
        return dict(b)
    return {"max_abs": max(a["max_abs"], b["max_abs"]), "max_rel": max(a["max_rel"], b["max_rel"]),
            "cosine": min(a["cosine"], b["cosine"]), "ref_max": max(a["ref_max"], b["ref_max"])}


def passes(stats: dict, tol: dict) -> bool:
    """Whether one output's (worst) figures are within ``tol``."""
    return (stats["max_abs"] <= tol["atol"] + tol["rtol"] * stats["ref_max"]
            and stats["cosine"] >= tol["min_cosine"])
