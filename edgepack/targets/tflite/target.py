"""The ``cpu`` target: a TFLite flatbuffer written by our own ONNX->TFLite converter, run by LiteRT
(or tflite-runtime) with XNNPACK on the device."""
from __future__ import annotations

import onnx

from ...stages import stage
from ..base import Converted, Job, QuantOptions, Requirement, Target

LATENCY_BUDGET_S = 0.6      # host latency measurement per target (fp32 and the ratio), loading included


class TFLiteTarget(Target):
    name = "cpu"
    format = "tflite"
    aliases = ("tflite",)
    portable = True
    debug_precision = "int8"
    debug_precisions = ("int8", "int16x8")
    summary = "TFLite for CPUs (LiteRT / tflite-runtime, XNNPACK): our own ONNX->TFLite writer"
    precisions = ("fp32", "fp16", "int8-dynamic", "int8", "int16x8")
    requires = (Requirement("ai_edge_litert", "ai-edge-litert",
                            "the TFLite schema, calibration and verification in LiteRT"),)

    def registry(self):
        from .registry import TFLITE
        return TFLITE

    def preflight(self, model: onnx.ModelProto) -> None:
        from .convert import preflight
        from ..quantized_in import preflight as qdq_preflight
        qdq_preflight(model, preflight, self.name)      # a quantized model is checked as its float twin

    def quant_choices(self) -> dict[str, tuple[str, ...]]:
        """Accepted values of the QuantOptions fields this target reads."""
        from .quant.full_integer import IO_TYPES
        from .quant.ladder import RUNGS
        from .quant.policy import POLICIES
        from .quant.ranges import METHODS
        return {"method": ("auto",) + METHODS, "io": IO_TYPES, "policy": POLICIES, "rungs": RUNGS}

    def convert(self, model: onnx.ModelProto, job: Job) -> Converted:
        from .convert import lower
        from ..quantized_in import float_view
        from .quant.measure import latency_ms
        extra, latency = {}, None
        model, qdq = float_view(model)          # QDQ / QOperator in: its float twin and its own parameters
        if job.precision in ("int8", "int16x8"):
            result = self._quantize(model, job, job.quant, qdq)
            low, tm, latency = result.lowered, result.model, result.latency
            from .quant.pipeline import describe
            extra["quantization"] = describe(result, job.quant)
        elif job.precision == "int8-dynamic":
            low = lower(model)
            tm, extra["dynamic_convs"] = self._dynamic(low, model, job)
        else:
            low = lower(model)
            tm = low.finish(job.precision)
        info = {k: v for k, v in tm.stats.items() if k != "quantization"}
        if qdq is not None:
            info["dequantized"] = qdq.counts
        fp32 = None
        if job.precision != "fp32":
            fp32 = low.finish("fp32")
            info["fp32_size"] = len(fp32.data)
        with stage(f"latency:{self.name}"):
            job.progress("measuring latency on this host (LiteRT)")
            # One budget for the stage: halved when fp32 is measured too (for the ratio).
            budget = LATENCY_BUDGET_S / (2 if fp32 is not None else 1)
            sample = job.calibration.holdout[0]
            latency = dict(latency or latency_ms(tm.data, tm.io, sample, budget_s=budget))
            if fp32 is not None:
                latency["ratio_to_fp32"] = latency["mean"] / latency_ms(fp32.data, fp32.io, sample,
                                                                        budget_s=budget)["mean"]
        extra["latency_ms"] = latency
        file = self.path("model.tflite")
        return Converted({file: tm.data}, file, tm.io, info, extra)

    def _dynamic(self, low, model: onnx.ModelProto, job: Job):
        """int8-dynamic with every convolution's weights int8; when that misses the gate on the held-out samples
        and convolutions wider than 1x1 are int8, again with only the 1x1 ones int8 (``compress_weights``),
        kept when it does better. (the model, the manifest's ``dynamic_convs`` record)"""
        from .compress import wide_dynamic_convs
        from .quant.measure import measure
        tm = low.finish("int8-dynamic")
        record = {"kept": "all"}
        cal = job.calibration
        if not cal.holdout or not wide_dynamic_convs(low.graph):
            return tm, record
        job.progress("checking int8-dynamic on the held-out samples")
        first = measure(tm.data, tm.io, model, cal.holdout, job.reference, job.gate, job.num_threads)
        record["all"] = _brief(first)
        if first["passed"]:
            return tm, record
        job.progress("int8-dynamic missed the gate: again with int8 weights on 1x1 convolutions only")
        narrow = low.finish("int8-dynamic", dynamic_convs="pointwise")
        second = measure(narrow.data, narrow.io, model, cal.holdout, job.reference, job.gate, job.num_threads)
        record["pointwise"] = _brief(second)
        if second["passed"] or (second["min_snr_db"] > first["min_snr_db"] and
                                second["min_cosine"] >= first["min_cosine"]):
            record["kept"] = "pointwise"
            return narrow, record
        return tm, record

    def quantize_debug(self, model: onnx.ModelProto, job: Job):
        """Full-integer int8 without mixed precision: the result's ``layers`` / ``ranked`` are the table."""
        from ..quantized_in import float_view
        opts = QuantOptions(**{**job.quant.__dict__, "mixed_precision": False})
        flt, qdq = float_view(model)
        return self._quantize(flt, job, opts, qdq)

    def _quantize(self, model, job: Job, options: QuantOptions, qdq=None):
        from .quant.pipeline import quantize
        cal = job.calibration
        return quantize(model, cal.calib, cal.holdout, job.reference, job.gate, options,
                        num_threads=job.num_threads, progress=job.progress, qdq=qdq,
                        precision="int16x8" if job.precision == "int16x8" else "int8")


def _brief(figures: dict) -> dict:
    return {k: figures[k] for k in ("passed", "min_cosine", "max_rel_error", "min_snr_db") if k in figures}


TARGET = TFLiteTarget()
