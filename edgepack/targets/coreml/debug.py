"""The per-layer table of ``edgepack debug-quant --target coreml``: where compression loses accuracy.

The compressed fp16 program and its fp32 twin (same translation, no compression) run side by side in the
numpy MIL reference executor, every value kept. coremltools renames values when it casts to fp16 or
compresses a weight (``c`` -> ``c_cast_fp16``, ``w`` -> ``w_to_fp16_palettized``), so values are paired by
their name without those suffixes. Per op: ``snr_db`` / ``cosine`` of its output against the twin (error
accumulated so far), ``quant_snr_db`` for ops reading a compressed weight (the decompressed weight against the
original: the error compression itself adds there), ``added_db`` (dB lost between its worst input and its
output). Rows are ranked by ``edgepack.verify.layers.rank``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import onnx
from edgepack_runtime.compare import CAP_DB, compare_runs, cosine, snr_db, summarize

from ...verify.layers import rank
from ..base import Job

DEBUG_SAMPLES = 4           # the executor is numpy: a few held-out samples
_RENAMED = re.compile(r"(_cast_fp16|_to_fp16|_to_fp32|_palettized|_quantized|_sparsified|_pruned)+$")
_COMPRESSED = re.compile(r"_(palettized|quantized|sparsified|pruned)")


@dataclass
class LayerTable:
    figures: dict       # the compressed model's gate figures on the samples used
    method: str
    layers: list[dict]  # graph order
    ranked: list[dict]  # worst first


def debug_layers(model: onnx.ModelProto, job: Job, deployment: str) -> LayerTable:
    from edgepack_runtime.backends.coreml_ref import load

    from . import compress
    from .convert import discard, lower, package, zip_package
    ml32 = package(lower(model, deployment), precision="fp32", deployment=deployment, metadata={})
    twin = load(zip_package(ml32))
    mlq = package(lower(model, deployment, "fp16"), precision="fp16", deployment=deployment, metadata={})
    stats = None
    if job.precision == "w8a8":          # int8 weights, then int8 activations at the executor's ranges
        from .activations import calibrated, quantize_activations
        fp16 = mlq
        w8, _, stats, wide = calibrated(mlq, model, list(job.calibration.calib or job.calibration.all))
        mlq = quantize_activations(w8, stats, wide)
        discard(fp16, w8)
    elif job.precision in compress.MODES:
        fp16, mlq = mlq, compress.compress(mlq, job.precision)
        discard(fp16)
    data = zip_package(mlq)
    q = load(data)
    discard(ml32, mlq)
    factor = {}
    if stats is not None:                 # a rescaled add's values in the model's units
        from .activations import gains
        from .convert import load_program
        factor = gains(load_program(data)[1], stats)
    samples = job.calibration.holdout[:DEBUG_SAMPLES]
    feeds = [dict(zip(q.input_names, (s[i.name] for i in model.graph.input))) for s in samples]
    job.progress(f"running the fp32 twin and the {job.precision} program value by value ({len(samples)} samples)")
    t32 = [twin.run(f, keep_all=True) for f in feeds]
    tq = [q.run(f, keep_all=True) for f in feeds]
    names = [o.name for o in model.graph.output]
    got = [dict(zip(names, (t[n] for n in q.output_names))) for t in tq]
    figures = dict(summarize(compare_runs(got, job.reference[:len(samples)], names), job.gate), samples=len(samples))
    rows = _rows(model, q, twin, t32, tq, factor)
    return LayerTable(figures, job.precision, rows, rank(rows))


def _rows(model, q, twin, t32, tq, factor: dict) -> list[dict]:
    producer = {o: n.name for n in model.graph.node for o in n.output}
    consts, twin_consts = q.constants, twin.constants
    snr_of: dict[str, float] = {}
    rows = []
    for op, reads, writes in q.operations():
        for out in writes:
            base = _RENAMED.sub("", out)
            if base not in t32[0] or np.asarray(tq[0][out]).dtype.kind != "f":
                continue
            ref = np.concatenate([np.ravel(t[base]) for t in t32]).astype(np.float64)
            val = np.concatenate([np.ravel(t[out]) for t in tq]).astype(np.float64) * factor.get(out, 1.0)
            snr_of[out] = snr = snr_db(val, ref)
            before = [snr_of[r] for r in reads if r in snr_of]
            row = {"tensor": base, "op": op, "origin": producer.get(base, ""), "snr_db": snr,
                   "cosine": cosine(val, ref), "added_db": max(0.0, (min(before) if before else CAP_DB) - snr)}
            own = [snr_db(consts[r], twin_consts[_RENAMED.sub("", r)]) for r in reads
                   if _COMPRESSED.search(r) and r in consts and _RENAMED.sub("", r) in twin_consts]
            row["int8"] = bool(own)            # the row format's "quantized" flag: reads a compressed weight
            if own:
                row["quant_snr_db"] = min(own)
            rows.append(row)
    return rows
