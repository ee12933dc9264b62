"""The default mixed-precision strategy: find the set on a few held-out samples, measure it once on all.

Every step of the search is a cheap measurement (``SCAN_SAMPLES`` samples); the gate is turned into a noise
power per output that the cheap measurement must reach: ``e = 10^(-SNR/10)`` under the gate's SNR threshold
and under the noise that would pull the cosine below its threshold (for noise uncorrelated with the signal,
cos = 1 / sqrt(1 + e)), ``MARGIN_DB`` to spare. Then:

1. climb: the shortest prefix of the layer ranking that reaches the target, by doubling (1, 2, 4, 8...
   layers, past the budget if need be: the layers a model needs together often sit far apart in the
   ranking) and bisection between the last two steps. When even every layer in higher precision does not
   reach it, the search ends: the budget's share of the ranking, measured once, is the best attempt;
2. eliminate: try dropping chunks of that prefix (its halves, then their halves...), keeping each drop the
   target survives: layers that only help together stay together, layers nobody needs leave in bulk;
3. verify the set on every held-out sample (one full measurement). If some output still fails (the scan
   samples were kinder than the rest), that output's target is tightened by what it missed and the search
   runs again on four times as many scan samples, at most ``ROUNDS`` times. A set larger than the budget is
   not returned as a pass.

The gate's other parts (relative error, top-1, task figures) are judged as they are on the scan samples: a
step reaches the target when the noise is low enough and nothing else in the gate fails there.

The legacy strategy pays a full measurement for every step of its climb and of its prune; here the full
measurements are the verifications (usually one), and the cheap ones cost ``SCAN_SAMPLES`` samples.
"""
from __future__ import annotations

import numpy as np

SCAN_SAMPLES = 4       # held-out samples per cheap measurement
MARGIN_DB = 1.0        # the cheap measurement must beat what the gate needs by this much
ROUNDS = 3
FLOOR = 1e-10          # the noise power of an exact output (compare.CAP_DB)
NOISE_PARTS = ("SNR", "cosine", "mean cosine")    # the gate's parts the noise target stands for


def noise(figures: dict) -> np.ndarray:
    """Per-output noise power relative to the signal, from the figures' per-output SNR."""
    return np.array([10.0 ** (-o.get("snr_db", 100.0) / 10.0) for o in figures["outputs"].values()])


def required(figures: dict) -> np.ndarray:
    """Per-output noise power the gate tolerates (SNR and cosine thresholds), ``MARGIN_DB`` under it."""
    t = figures.get("thresholds", {})
    limits = [1.0 / t["min_cosine"] ** 2 - 1.0] if t.get("min_cosine") else []
    if t.get("min_snr_db") is not None:
        limits.append(10.0 ** (-t["min_snr_db"] / 10.0))
    e = min(limits) if limits else 1e-2
    return np.full(len(figures["outputs"]), max(e, FLOOR) * 10.0 ** (-MARGIN_DB / 10.0))


class _Scan:
    """Cheap measurements against one base (``keep``): does keeping ``extra`` too reach ``target``?"""

    def __init__(self, trial, keep: list[str], target: np.ndarray, failing: np.ndarray, progress, samples: int):
        self.trial, self.keep, self.progress, self.seen, self.samples = trial, keep, progress, {}, samples
        self.e0 = self.measure([])
        # an output failing in full but not on the scan samples (a relative-error or top-1 miss): 3 dB lower
        self.target = np.where(failing & (self.e0 <= target), self.e0 / 2.0, target)

    def measure(self, extra: list[str]) -> np.ndarray:
        return self._figures(extra)[0]

    def _figures(self, extra: list[str]) -> tuple[np.ndarray, bool]:
        """(noise per output, whether the gate's other parts pass) on the scan samples."""
        key = frozenset(extra)
        if key not in self.seen:
            _, fig = self.trial.run(self.keep + extra, self.samples, record=False)
            others = all(w.startswith(NOISE_PARTS) for why in fig.get("failed", {}).values() for w in why)
            self.seen[key] = (noise(fig), others)
        return self.seen[key]

    def enough(self, extra: list[str]) -> bool:
        e, others = self._figures(extra)
        return bool(np.all(e <= self.target)) and others

    def climb(self, order: list[str]) -> list[str] | None:
        """The shortest prefix of ``order`` reaching the target; None when not even all of it does."""
        k = 1
        while not self.enough(order[:k]) and k < len(order):
            self.progress(f"gate failed: trying {min(2 * k, len(order))} layer(s) in higher precision")
            k = min(2 * k, len(order))
        if not self.enough(order[:k]):
            return None
        lo, hi = k // 2, k                   # order[:lo] fails (or lo is 0), order[:hi] reaches the target
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.enough(order[:mid]) else (mid, hi)
        return order[:hi]

    def eliminate(self, kept: list[str], budget: int) -> list[str]:
        """Drop chunks of ``kept`` (halves first, then their halves) while the target is still reached; the
        last layer of a shortest prefix is needed by construction and is not tried alone. Stops once more
        layers than ``budget`` have proved needed (the set cannot fit the budget any more)."""
        chunks, needed = ([kept[:-1]] if len(kept) > 1 else []), 1
        while chunks and needed <= budget:
            chunk = [n for n in chunks.pop(0) if n in kept]
            if not chunk:
                continue
            fewer = [n for n in kept if n not in chunk]
            if self.enough(fewer):
                self.progress(f"eliminating: {len(fewer)} layer(s) still reach the gate")
                kept = fewer
            elif len(chunk) > 1:
                half = len(chunk) // 2
                chunks += [chunk[:half], chunk[half:]]
            else:
                needed += 1
        return kept


def isolate(trial, keep, pinned, ranked, max_fraction, candidate, figures, progress, score):
    """``edgepack.mixed.search`` with the isolating strategy (see the module docstring)."""
    names = [r["tensor"] for r in ranked if r["tensor"] not in keep]
    budget = max(1, int(max_fraction * len(names)))
    best = (keep, candidate, figures)
    target, chosen, fig = required(figures), None, figures
    for rounds in range(ROUNDS):
        failing = np.array([name in fig.get("failed", {}) for name in fig["outputs"]])
        scan = _Scan(trial, keep, target, failing, progress, SCAN_SAMPLES * 4 ** rounds)
        if np.all(scan.e0 <= scan.target) or not names:
            break
        prefix = scan.climb(names)
        if prefix is None:      # higher precision everywhere is not enough: the budget's worth, measured once
            progress("gate failed: no set of layers reaches the gate on the scan samples")
            picked = names[:budget]
            cand, fig = trial.run(keep + picked)
            return max(best, (keep + picked, cand, fig), key=lambda b: score(b[2]))
        picked = scan.eliminate(prefix, budget)
        if picked == chosen:
            break
        chosen, over = picked, len(picked) > budget
        if over:        # the gate needs more than the budget allows: the best the budget buys, measured once
            progress(f"gate failed: {len(picked)} layers needed, the budget is {budget}")
            picked = picked[:budget]
        progress(f"gate failed: verifying {len(keep) + len(picked)} layer(s) in higher precision")
        cand, fig = trial.run(keep + picked)
        if score(fig) > score(best[2]):
            best = (keep + picked, cand, fig)
        if fig["passed"] or over:
            break
        target = _tighten(scan.target, fig)
    return best


def _tighten(target: np.ndarray, figures: dict) -> np.ndarray:
    """Outputs failing on noise aim lower: by what the full measurement missed (at least 3 dB)."""
    failed, e = figures.get("failed", {}), noise(figures)
    out = target.copy()
    for i, name in enumerate(figures["outputs"]):
        if any(w.startswith(NOISE_PARTS) for w in failed.get(name, ())):
            out[i] = min(target[i], e[i]) / max(2.0, e[i] / target[i])
    return out
