"""The cpu target's side of ``edgepack.transforms``: each ``auto`` transform is judged by the all-int8
model it gives (mixed precision off) in LiteRT on the held-out split, against the same without it."""
from __future__ import annotations

import onnx

from ....transforms import DEFAULTS, apply
from ...base import QuantOptions
from .measure import measure
from .policy import policy_float_nodes, resolve_keep


def choose_transforms(model: onnx.ModelProto, calib, holdout, reference, gate, options: QuantOptions,
                      num_threads=None, progress=lambda s: None) -> tuple[onnx.ModelProto, dict | None]:
    """(the model to quantize, the manifest's ``transforms`` record or None when all are off)."""
    settings = {**DEFAULTS, **(options.transforms or {})}
    if all(v == "off" for v in settings.values()):
        return model, None
    chosen: dict = {}

    def evaluate(m: onnx.ModelProto) -> dict:
        from .pipeline import coarse, prepare          # the pipeline imports this module
        policy = policy_float_nodes(m, options.policy)
        # the first candidate (the baseline) picks the calibration method; the others reuse it
        low, ranges, method = prepare(m, calib, chosen.get("method", options.method), float_origins=policy,
                                      policy=options.policy)
        policy = policy + [c["node"] for c in coarse(low, ranges, "int8", options.policy)]
        chosen.setdefault("method", method)
        tm = low.finish("int8", ranges=ranges, io=options.io, keep_float=resolve_keep(options.keep_float, low),
                        float_origins=policy)
        return measure(tm.data, low.io, m, holdout, reference, gate, num_threads)

    out, record = apply(model, calib, settings, evaluate, progress)
    if chosen:
        record["judged_with"] = {"method": chosen["method"], "samples": len(holdout), "mixed_precision": False}
    return out, record
