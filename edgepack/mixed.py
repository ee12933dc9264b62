"""Automatic mixed precision, for any quantizing target: which layers to keep in higher precision so that
the accuracy gate passes.

The target supplies a ``Trial``: ``make(keep)`` builds a candidate with the layers named in ``keep`` kept
in higher precision (float for TFLite; 16-bit activations or CPU for others), ``evaluate(candidate, n)``
measures it on the first ``n`` held-out samples (all of them when ``n`` is None) and returns gate figures
(``edgepack_runtime.compare.summarize``), ``size(candidate)`` gives its size in bytes.

Two strategies over the layer ranking (``edgepack.verify.layers.rank``, worst first):

- ``isolate`` (default, ``edgepack.mixed_isolate``): group testing on a few held-out samples finds the layers
  whose higher precision buys the most at the model output (every suspect is considered, not only the
  ranking's head), the set is predicted from additive noise powers and verified on all samples;
- ``legacy``: re-orders the ranking's first ``SENSITIVITY_CANDIDATES`` suspects by what keeping each alone
  buys, adds them in that order (1, 2, 3, 4, 6, 9... layers) until the gate passes or the budget is spent,
  then tries dropping each kept layer. Kept for comparison (``benchmarks/bench_mixed_search.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Trial:
    """Builds and measures one candidate at a time; ``tried`` records every full measurement, ``cheap`` counts
    the unrecorded ones (a few samples each)."""

    make: Callable[[list[str]], object]
    evaluate: Callable[[object, int | None], dict]
    size: Callable[[object], int]
    tried: list[dict] = field(default_factory=list)
    cheap: int = 0

    def run(self, keep: list[str], n: int | None = None, record: bool = True):
        candidate = self.make(keep)
        figures = self.evaluate(candidate, n)
        self.cheap += not record
        if record:
            self.tried.append({"float_layers": len(keep), "passed": figures["passed"],
                               "min_cosine": figures["min_cosine"], "min_snr_db": figures["min_snr_db"],
                               "size": self.size(candidate)})
        return candidate, figures


def search(trial: Trial, keep: list[str], pinned: list[str], ranked: list[dict], max_fraction: float,
           candidate, figures, progress: Callable[[str], None] = lambda s: None, strategy: str = "isolate"):
    """(keep, candidate, figures) after mixed precision; the best attempt if the gate is never met.

    ``keep``: layers already kept (``pinned`` ones, named by the user, are never pruned); ``ranked``: layer
    rows worst first; ``max_fraction``: at most this share of the ranked layers is added; ``candidate`` and
    ``figures``: the starting point (``keep`` applied) and its full gate figures; ``strategy``: ``isolate``
    or ``legacy`` (module docstring)."""
    if strategy == "isolate":
        from .mixed_isolate import isolate
        return isolate(trial, keep, pinned, ranked, max_fraction, candidate, figures, progress, _score)
    if strategy != "legacy":
        raise ValueError(f"unknown mixed-precision strategy {strategy!r}: use 'isolate' or 'legacy'")
    candidates = [r for r in ranked if r["tensor"] not in keep]
    budget = max(1, int(max_fraction * len(candidates)))
    progress("gate failed: measuring how much each suspect layer costs")
    best = (keep, candidate, figures)
    order = _by_sensitivity(trial, keep, candidates)
    k = 1
    while k <= min(budget, len(order)) and not figures["passed"]:
        extra = [r["tensor"] for r in order[:k]]
        progress(f"gate failed: keeping {len(keep) + k} layer(s) in higher precision")
        candidate, figures = trial.run(keep + extra)
        if _score(figures) > _score(best[2]):
            best = (keep + extra, candidate, figures)
        if figures["passed"]:
            keep = keep + extra
            break
        k = k + 1 if k < 4 else max(k + 1, int(k * 1.5))
    if not figures["passed"]:      # budget spent: ship (with --allow-mismatch) the best attempt seen
        return best
    if len(keep) > 1:
        keep, candidate, figures = _prune(trial, keep, set(pinned), candidate, figures)
    return keep, candidate, figures


SENSITIVITY_CANDIDATES = 16    # suspects (by the layer ranking) whose higher-precision version is measured alone
SENSITIVITY_SAMPLES = 16


def _by_sensitivity(trial: Trial, keep, candidates):
    """The ranking's suspects re-ordered by what keeping each alone buys at the model output (SNR on a few
    held-out samples); the rest follow in the ranking's order."""
    head, tail = candidates[:SENSITIVITY_CANDIDATES], candidates[SENSITIVITY_CANDIDATES:]
    scored = []
    for i, r in enumerate(head):
        _, fig = trial.run(keep + [r["tensor"]], SENSITIVITY_SAMPLES, record=False)
        r["float_gain"] = {"snr_db": fig["min_snr_db"], "cosine": fig["min_cosine"]}
        scored.append((-fig["min_snr_db"], -fig["min_cosine"], i, r))
    return [r for *_, r in sorted(scored, key=lambda x: x[:3])] + tail


def _prune(trial: Trial, keep, pinned: set[str], candidate, figures):
    """Drop kept layers the gate does not need (last added first)."""
    for name in reversed(list(keep)):
        if name in pinned:
            continue
        fewer = [n for n in keep if n != name]
        cand, fig = trial.run(fewer)
        if fig["passed"]:
            keep, candidate, figures = fewer, cand, fig
    return keep, candidate, figures


def _score(figures) -> tuple:
    return (figures["passed"], -len(figures.get("failed", {})), figures["min_snr_db"], figures["min_cosine"])
