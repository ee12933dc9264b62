"""Measurements of ``bench_int8_families.py``: the issue's verdict, LiteRT latency against fp32, the
onnxruntime ``quantize_static`` baseline and the delegate partitions of a built model.

The verdict of issue #14: on the held-out samples, every output has cosine >= 0.99 on its worst sample and
max |got - ref| <= 10% of the reference's range (max - min over the held-out set); the worst output counts.
An output with one value per sample (a wake-word or end-of-turn probability) gets its cosine over the held-out
samples' values instead (a per-sample cosine of one number is only its sign).
Figures come from ``edgepack_runtime.compare.compare_output``; any figure it reports beyond the basic ones
(task-aware figures: top-k agreement, map IoU, probability error...) is carried into the row as is.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import ort_qdq  # noqa: E402
from benchmarks.common import interpreter, invoke, op_histogram, paired_latency  # noqa: E402
from edgepack.targets.tflite.quant.ranges import model_feeds  # noqa: E402
from edgepack_runtime.backends.ort import fused_int8_saturates  # noqa: E402
from edgepack_runtime.compare import compare_output  # noqa: E402

MIN_COSINE, MAX_RANGE_ERROR = 0.99, 0.10
BASIC = {"cosine_over_samples", "cosine", "cosine_mean", "max_abs", "ref_max", "rel_error", "snr_db", "shape_mismatch", "non_finite",
         "exact_match"}
ORT_OPSET = 13


def error_text(exc: Exception, limit: int = 160) -> str:
    """A row's ``error``: the exception's type and the first line of its message, cut at ``limit``."""
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:limit]}"


def judge(got: list[dict], ref: list[dict], names: list[str]) -> dict:
    """The issue's verdict over ``names`` (worst output), with per-output figures."""
    per = {}
    for n in names:
        f = compare_output([g[n] for g in got], [r[n] for r in ref])
        r = np.stack([np.asarray(x, np.float64) for x in (s[n] for s in ref)])
        span = float(np.nanmax(r) - np.nanmin(r)) if r.size else 0.0
        f["range"] = span
        f["range_error"] = f["max_abs"] / span if span > 0 else (0.0 if f["max_abs"] == 0 else float("inf"))
        if not np.isfinite(f["cosine"]):
            f["cosine"] = 0.0                # NaN never passes
        per[n] = f
    worst_cos = min(per, key=lambda n: per[n]["cosine"])
    worst_err = max(per, key=lambda n: per[n]["range_error"])
    cos, err = per[worst_cos]["cosine"], per[worst_err]["range_error"]
    task = {f"{n}:{k}": v for n, f in per.items() for k, v in f.items() if k not in BASIC | {"range", "range_error"}}
    return {"cosine": cos, "cosine_output": worst_cos, "range_error": err, "range_error_output": worst_err,
            "snr_db": min(f.get("snr_db", 100.0) for f in per.values()),
            "passed": bool(cos >= MIN_COSINE and err <= MAX_RANGE_ERROR), "task": task,
            "outputs": {n: {k: v for k, v in f.items() if isinstance(v, (int, float))} for n, f in per.items()}}


def litert_latency(base: tuple[bytes, dict], other: tuple[bytes, dict], sample: dict, rounds: int = 20,
                   budget_s: float = 20.0) -> dict:
    """Median ms of fp32 and ``other`` in LiteRT (XNNPACK, 1 thread), alternating rounds, and the ratio."""
    it_a, it_b = interpreter(base[0], threads=1), interpreter(other[0], threads=1)
    a, b = model_feeds([sample], base[1])[0], model_feeds([sample], other[1])[0]
    ms_a, ms_b = paired_latency(lambda: invoke(it_a, a), lambda: invoke(it_b, b), rounds=rounds, budget_s=budget_s)
    return {"fp32_ms": ms_a, "ms": ms_b, "ratio": ms_b / ms_a}


def ops_left(data: bytes) -> dict:
    """QUANTIZE / DEQUANTIZE counts, and the XNNPACK partitions report when the code has one."""
    hist = op_histogram(data)
    out = {"ops": sum(hist.values()), "quantize_ops": hist.get("QUANTIZE", 0),
           "dequantize_ops": hist.get("DEQUANTIZE", 0)}
    try:
        from edgepack.targets.tflite.quant import partitions
    except ImportError:
        return out
    try:
        rep = partitions.report(data, num_threads=1)
        out.update(partitions=rep.get("partitions"), delegated=rep.get("delegated"),
                   partitions_summary=partitions.summary(rep))
    except Exception as exc:            # a report that fails is a finding, not a crash
        out["partitions_error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    return out


def raise_opset(model: onnx.ModelProto, version: int = ORT_OPSET) -> tuple[onnx.ModelProto, str]:
    """``model`` converted to ai.onnx ``version`` when older (onnx.version_converter), and what was done."""
    have = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), version)
    if have >= version:
        return model, f"opset {have}"
    try:
        return onnx.version_converter.convert_version(model, version), f"opset {have} -> {version}"
    except Exception as exc:
        return model, f"opset {have} (raise to {version} failed: {str(exc)[:80]})"


def _ort_session(src):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def ort_baseline(model: onnx.ModelProto, calib: list[dict], holdout: list[dict], ref: list[dict],
                 names: list[str], rounds: int = 20) -> dict:
    """onnxruntime quantize_static (pre-process, QDQ, per-channel int8 weights, uint8 activations, MinMax,
    opset raised to 13) on ``calib``, judged on ``holdout``; size and latency against its own fp32 file."""
    t0 = time.perf_counter()
    row = {"precision": "ort-qdq", "runtime": "onnxruntime"}
    src, note = raise_opset(model)
    with tempfile.TemporaryDirectory(prefix="families_ort_") as tmp:
        path = Path(tmp) / "model.qdq.onnx"
        try:
            try:
                rep = ort_qdq.ort_quantize(src, calib, path, per_channel=True, method="minmax",
                                           activation_type="uint8", weight_type="int8")
            except ValueError as exc:    # onnxruntime issue #24815: its int32-bias weight-scale check fails
                if "truth value of an array" not in str(exc):
                    raise
                rep = ort_qdq.ort_quantize(src, calib, path, per_channel=True, method="minmax",
                                           activation_type="uint8", weight_type="int8",
                                           extra_options={"QDQDisableWeightAdjustForInt32Bias": True})
                note += "; QDQDisableWeightAdjustForInt32Bias (onnxruntime #24815)"
            got = ort_qdq.run_ort(rep["path"], holdout, optimize=True)    # as onnxruntime runs it by default
        except Exception as exc:       # the baseline's own failures are results too
            row["error"] = error_text(exc)
            row["seconds"] = time.perf_counter() - t0
            return row
        fp32_bytes = src.SerializeToString()
        row.update(judge(got, ref, names))
        if fused_int8_saturates():     # say where the comparison is not like for like, and what it would be
            try:
                plain = judge(ort_qdq.run_ort(rep["path"], holdout, optimize=False), ref, names)
                note += (f"; this CPU has no VNNI: onnxruntime's fused u8s8 kernels saturate (its docs advise "
                         f"reduce_range); the QDQ model unfused: cos {plain['cosine']:.4f}, "
                         f"err {plain['range_error']:.1%}")
            except Exception as exc:
                note += f"; this CPU has no VNNI (fused u8s8 kernels saturate); unfused: {error_text(exc, 80)}"
        row.update(size=path.stat().st_size, fp32_size=len(fp32_bytes), notes=[note],
                   float_nodes=len(ort_qdq.float_nodes(rep["path"])))
        sample = {k: np.ascontiguousarray(v) for k, v in holdout[0].items()}
        s32, s8 = _ort_session(fp32_bytes), _ort_session(str(path))
        ms32, ms8 = paired_latency(lambda: s32.run(None, sample), lambda: s8.run(None, sample), rounds=rounds,
                                   budget_s=20)
        row["latency"] = {"fp32_ms": ms32, "ms": ms8, "ratio": ms8 / ms32}
    row["seconds"] = time.perf_counter() - t0
    return row


def ort_fused(model: onnx.ModelProto, holdout: list[dict], ref: list[dict], names: list[str]) -> dict:
    """A QDQ model run by onnxruntime with its fused integer kernels (full graph optimization), judged against
    the reference (the model as ONNX defines it: ``reference_outputs`` runs it unfused): how far onnxruntime's
    own fast execution of the model lands. On x86 without VNNI its u8s8 products saturate
    (``edgepack_runtime.backends.ort.fused_int8_saturates``) and this row shows it."""
    t0 = time.perf_counter()
    row = {"precision": "ort-fused", "runtime": "onnxruntime, fused int8 kernels"}
    try:
        row.update(judge(ort_qdq.run_ort(model, holdout, optimize=True), ref, names))
    except Exception as exc:
        row["error"] = error_text(exc)
    row["seconds"] = time.perf_counter() - t0
    return row


def dither_floor(model: onnx.ModelProto, calib: list[dict], holdout: list[dict], ref: list[dict],
                 names: list[str], seed: int = 0) -> dict | None:
    """The reference model itself on held-out inputs moved by half an int8 step (``edgepack.verify.floor``),
    judged like every other row: a verdict the float model misses here asks for more than the model's own
    stability. None when the model has no float input."""
    from edgepack.verify.floor import input_floor
    t0 = time.perf_counter()
    row = {"precision": "fp32-dither", "runtime": "onnxruntime, inputs dithered by half an int8 step"}
    try:
        floor = input_floor(model, holdout, calib + holdout, seed)
        if floor is None:
            return None
        row["dither_steps"] = floor[1]
        row.update(judge(floor[0], ref, names))
    except Exception as exc:
        row["error"] = error_text(exc)
    row["seconds"] = time.perf_counter() - t0
    return row
