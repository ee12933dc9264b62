"""Small helpers shared by the op families."""
from __future__ import annotations

import numpy as np


def ival(x) -> int:
    return int(np.asarray(x).reshape(()))


def ints(x) -> list[int]:
    return [int(v) for v in np.asarray(x).reshape(-1)]


def fval(x) -> float:
    return float(np.asarray(x).reshape(()))


def axis_of(axis, rank: int) -> int:
    a = ival(axis)
    return a + rank if a < 0 else a


def axes_of(axes, rank: int) -> tuple[int, ...] | None:
    """Normalized axes; None (all axes) when ``axes`` is None."""
    if axes is None:
        return None
    return tuple(sorted(a + rank if a < 0 else a for a in ints(axes)))


def channel_shape(param, rank: int) -> np.ndarray:
    """A per-channel vector [C] broadcastable against [N, C, *D] (rank ``rank``)."""
    p = np.asarray(param)
    return p.reshape((1, -1) + (1,) * (rank - 2)) if p.ndim == 1 else p


def erf(x):
    """erf by Abramowitz & Stegun 7.1.26 in float64: absolute error below 1.5e-7 (numpy has no erf)."""
    x = np.asarray(x, np.float64)
    s, a = np.sign(x), np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))
