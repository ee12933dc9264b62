"""onnxruntime's own QNN quantization recipe, and the measurement both sides of ``bench_qualcomm.py`` share.

The recipe, as onnxruntime documents it for the QNN EP: ``qnn_preprocess_model`` (its fusions; when it
fires none it writes nothing and the model goes on as is), then ``get_qnn_qdq_config`` with its defaults
(MinMax, uint8 activations, uint8 asymmetric weights, ``per_channel=False``), activations uint16 for
w8a16, then ``quantize``. Nothing else: no opset upgrade, no rewrites, no overrides.

``measure`` is the one measurement: the QDQ model on the HTP simulator (``targets.qualcomm.htp.run``,
configured as HTP v75 on SM8650: ``DEVICE``) on the held-out samples against the fp32 reference
(``edgepack_runtime.compare``, the precision's gate), then the EP-context compilation for that HTP and the
placement report from it (``targets.qualcomm.context`` / ``placement``): both sides counted by the same code.
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

from edgepack.targets.qualcomm import htp
from edgepack.targets.qualcomm.context import DEFAULT_HTP_ARCH, DEFAULT_SOC_MODEL, compile_context
from edgepack.targets.qualcomm.placement import report
from edgepack_runtime.compare import compare_runs, summarize

ACTIVATIONS = {"w8a8": QuantType.QUInt8, "w8a16": QuantType.QUInt16}
# The simulator configured as the device the build compiles for (v75, SM8650): its results depend on it
# (``targets.qualcomm.mixed.device_options``), so every session of the run names it.
DEVICE = {"htp_arch": DEFAULT_HTP_ARCH, "soc_model": DEFAULT_SOC_MODEL}


class _Reader(CalibrationDataReader):
    def __init__(self, samples):
        self._it = iter(samples)

    def get_next(self):
        return next(self._it, None)


def recipe(model: onnx.ModelProto, calib: list[dict], precision: str) -> tuple[onnx.ModelProto, list[str]]:
    """(QDQ model, notes) of onnxruntime's QNN recipe at ``precision`` (w8a8 | w8a16)."""
    notes = []
    root = logging.getLogger()
    root.disabled = True          # the quantizer logs a warning per node on the root logger
    try:
        with tempfile.TemporaryDirectory(prefix="qnn_recipe_") as tmp:
            src, pre, out = (Path(tmp) / n for n in ("model.onnx", "pre.onnx", "qdq.onnx"))
            onnx.save(model, str(src))
            try:
                if qnn_preprocess_model(str(src), str(pre)) and pre.exists():
                    src = pre
                    notes.append("qnn_preprocess_model fused")
            except Exception as exc:   # a documented pitfall (metadata_props); the recipe goes on without it
                notes.append(f"qnn_preprocess_model failed: {type(exc).__name__}: {str(exc)[:80]}")
            config = get_qnn_qdq_config(str(src), _Reader(calib), activation_type=ACTIVATIONS[precision])
            quantize(str(src), str(out), config)
            return onnx.load(str(out)), notes
    finally:
        root.disabled = False


def measure(qdq: onnx.ModelProto, holdout: list[dict], reference: list[dict], names: list[str], gate,
            *, placement: dict | None = None) -> dict:
    """HTP-simulator figures of ``qdq`` on ``holdout`` (gate verdict, cosine, max relative error, SNR, top-1),
    the seconds per inference, the QDQ size, and (unless ``placement`` is given) the context binary's size
    and the placement from compiling it."""
    t0 = time.perf_counter()
    got = [dict(zip(names, outs)) for outs in htp.run(qdq, holdout, provider_options=DEVICE)]
    seconds = (time.perf_counter() - t0) / max(len(holdout), 1)
    s = summarize(compare_runs(got, reference, names), gate)
    row = {"passed": s["passed"], "cosine": s["min_cosine"], "mean_cosine": s["mean_cosine"],
           "rel": s["max_rel_error"], "snr": s["min_snr_db"], "top1": s.get("min_top1_agreement"),
           "failed": s["failed"], "sec_per_inference": seconds, "qdq_bytes": qdq.ByteSize(),
           "nonfinite": any(f.get("non_finite") for f in s["outputs"].values())}
    if placement is None:
        data = qdq.SerializeToString()
        try:
            compiled = compile_context(data)
            placement = report(qdq, compiled.model, compiled.log)
            row["ctx_bytes"] = len(compiled.data)
        except Exception as exc:      # QNN could not build a graph: no context binary, every node on CPU
            placement = report(qdq, None)
            row["ctx_error"] = str(exc).splitlines()[0][:160]
    row["fraction_on_htp"] = placement["fraction_on_htp"]
    row["cpu_nodes"] = [f"{r['op_type']}:{r['name']}" for r in placement["cpu"]
                        if r["op_type"] not in ("QuantizeLinear", "DequantizeLinear")]
    return row
