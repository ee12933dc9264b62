"""Mixed precision for the cpu target, a ladder per layer: int8 -> 16x8 -> float.

The shared search (``edgepack.mixed.search``) runs twice over the layer ranking, as the qualcomm target's
a16-then-float does:

1. int16 (int8 models only): layers that break the gate get int16 activations (their output, and the ops
   reading or writing it where LiteRT has an int16 kernel: ``int16.INT16_OPS``); QUANTIZE requantizes
   between int8 and int16 where they meet. The layer stays on the integer path.
2. float, only when pass 1 did not reach the gate (or the model is 16x8 already): the layer and its readers
   run in float between DEQUANTIZE and QUANTIZE. A layer made float leaves the int16 set.

Only layers whose op has an int16 kernel are candidates in pass 1 (for the others int16 is float anyway).

Which rungs (``QuantOptions.rungs``, ``--mixed-rungs``): ``auto`` climbs int16 then float under the ``strict``
policy (integer-only accelerators, where float is not an option) and goes straight to float under ``cpu``
(LiteRT with XNNPACK): XNNPACK runs no int16 op and LiteRT's 16x8 convolution, depthwise and fully-connected
kernels are reference code, measured 17-23x slower than fp32 on PP-OCR cls, openwakeword, MiniLM and PP-OCR
det (a MiniLM whose two sensitive layers went int16 ran at 2.2x fp32, against 0.26x all-int8). ``int16,float``
asks for the integer path anyway (smaller than float layers, slower), ``float`` skips the int16 rung.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ....mixed import Trial, search
from .int16 import INT16_OPS


@dataclass
class Climb:
    wide: list[str]                       # tensors raised to int16
    keep: list[str]                       # tensors kept float (the user's pinned ones first)
    model: object
    figures: dict
    tried: list[dict] = field(default_factory=list)


RUNGS = ("auto", "int16,float", "float")


def rungs(choice: str, policy: str) -> tuple[str, ...]:
    """The rungs above int8 for ``--mixed-rungs`` ``choice`` under int8 ``policy`` (see the module docstring)."""
    from ....errors import EdgepackError
    if choice not in RUNGS:
        raise EdgepackError(f"--mixed-rungs '{choice}' is not one of {', '.join(RUNGS)}")
    if choice == "auto":
        return ("int16", "float") if policy == "strict" else ("float",)
    return tuple(choice.split(","))


def climb(finish: Callable[[list[str], list[str]], object], evaluate, pinned: list[str], ranked: list[dict],
          max_fraction: float, base, figures: dict, *, precision: str = "int8", steps=("int16", "float"),
          progress: Callable[[str], None] = lambda s: None) -> Climb:
    """Run the ladder from ``base`` (its gate ``figures`` failed). ``finish(keep_float, wide)`` builds a
    candidate, ``evaluate(candidate, n)`` measures it (``edgepack.mixed.Trial``); ``steps``: the rungs
    (``rungs()``)."""
    size = lambda tm: len(tm.data)  # noqa: E731
    wide, keep, tm, tried = [], list(pinned), base, []
    if precision == "int8" and "int16" in steps:
        rows = [r for r in ranked if r["op"] in INT16_OPS and r["tensor"] not in pinned]
        if rows:
            progress("gate failed: raising the most sensitive layers to 16-bit activations")
            t16 = Trial(lambda w: finish(list(pinned), w), evaluate, size)
            wide, tm, figures = search(t16, [], [], rows, max_fraction, tm, figures, progress)
            tried += [dict(e, rung="int16") for e in t16.tried]
    if not figures["passed"]:
        raised = list(wide)
        tf = Trial(lambda k: finish(k, [w for w in raised if w not in k]), evaluate, size)
        keep, tm, figures = search(tf, list(pinned), list(pinned), ranked, max_fraction, tm, figures, progress)
        tried += [dict(e, rung="float") for e in tf.tried]
        wide = [w for w in wide if w not in keep]
    return Climb(wide, keep, tm, figures, tried)
