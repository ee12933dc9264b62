"""Distances between two count vectors over the same bins (a baseline and a window): PSI, Jensen-Shannon,
KS, class-frequency shift, and a chi-square test that tells a real difference from sampling noise."""
from __future__ import annotations

import numpy as np

_PSEUDO = 0.5          # Jeffreys pseudo-count per bin: an empty bin in a short window is not "infinite" drift


def _norm(counts) -> np.ndarray:
    c = np.asarray(counts, np.float64)
    return (c + _PSEUDO) / (c.sum() + _PSEUDO * len(c)) if len(c) else c


def psi(expected, actual) -> float:
    """Population stability index between two count vectors over the same bins."""
    e, a = _norm(expected), _norm(actual)
    return float(np.sum((a - e) * np.log(a / e)))


def jensen_shannon(expected, actual) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1])."""
    e, a = _norm(expected), _norm(actual)
    m = (e + a) / 2
    return float(0.5 * np.sum(e * np.log2(e / m)) + 0.5 * np.sum(a * np.log2(a / m)))


def ks(expected, actual) -> float:
    """Kolmogorov-Smirnov statistic from binned distributions (max CDF gap at the bin edges; no smoothing)."""
    e, a = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    e, a = e / e.sum(), a / a.sum()
    return float(np.max(np.abs(np.cumsum(e) - np.cumsum(a))))


def class_shift(expected, actual) -> float:
    """Total variation distance between two class-frequency vectors (0 = same mix, 1 = disjoint)."""
    e, a = np.asarray(expected, np.float64), np.asarray(actual, np.float64)
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    return 0.5 * float(np.abs(e / e.sum() - a / a.sum()).sum())


def significant(expected, actual, z: float = 4.5) -> bool:
    """Chi-square test of homogeneity of two count vectors (Wilson-Hilferty approximation, numpy only):
    True when the difference is unlikely to be sampling noise (z = 4.5: about 3 in a million)."""
    table = np.stack([np.asarray(expected, np.float64), np.asarray(actual, np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    df = table.shape[1] - 1
    if df < 1 or table.sum(axis=1).min() <= 0:
        return False
    exp = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    x2 = float(((table - exp) ** 2 / exp).sum())
    return ((x2 / df) ** (1 / 3) - (1 - 2 / (9 * df))) / np.sqrt(2 / (9 * df)) > z
