"""The qualcomm target's side of ``edgepack.transforms`` (cross-layer equalization, smoothing, bias correction).

Each ``auto`` transform is judged by the plain QDQ model it gives at the build's precision (no mixed precision,
``--keep-float`` nodes float) as QDQ arithmetic on onnxruntime's CPU, on the held-out split, against the same
without it: the transforms change the float weights and ranges the quantization grid sees, which the CPU
computes exactly (the simulator would cost seconds per sample for the same verdict; HTP's own kernel losses,
which the CPU cannot see, are the mixed-precision search's business)."""
from __future__ import annotations

import onnx
from edgepack_runtime.compare import compare_runs, summarize

from ...transforms import DEFAULTS, apply
from ..base import Job


def choose_transforms(prepared: onnx.ModelProto, job: Job, overrides: dict[str, str], activations: str,
                      weights: str, method: str) -> tuple[onnx.ModelProto, dict | None]:
    """(the model to quantize, the manifest's ``transforms`` record, or None when all are off)."""
    from .mixed import cpu_run
    from .quantize import quantize
    settings = {**DEFAULTS, **(job.quant.transforms or {})}       # adaround stays off unless asked (minutes)
    holdout = job.calibration.holdout
    if all(v == "off" for v in settings.values()) or not holdout:
        return prepared, None
    calib = list(job.calibration.calib or job.calibration.all)
    names = [o.name for o in prepared.graph.output]

    def evaluate(m: onnx.ModelProto) -> dict:
        qdq = quantize(m, calib, activations=activations, weights=weights, overrides=overrides, method=method,
                       model_ranges=job.model_ranges)
        return summarize(compare_runs(cpu_run(qdq, holdout), job.reference, names), job.gate)

    out, record = apply(prepared, calib, settings, evaluate, job.progress)
    record["judged_with"] = {"backend": "onnxruntime-cpu (QDQ arithmetic)", "samples": len(holdout),
                             "mixed_precision": False}
    return out, record
