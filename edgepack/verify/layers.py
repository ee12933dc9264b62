"""The per-layer table every quantizing target produces, and its ranking (worst first).

A row: ``tensor``, ``op``, ``origin`` (the ONNX node), ``int8`` (whether the layer is quantized),
``snr_db`` / ``cosine`` (accumulated error against the float twin), ``quant_snr_db`` (the error the layer's
own quantization parameters add) and ``added_db`` (dB lost between the layer's worst input and its output).
The debugger, the build report and mixed precision all read this order.
"""
from __future__ import annotations

from edgepack_runtime.compare import CAP_DB

def rank(rows: list[dict]) -> list[dict]:
    """Quantized layers by the error they add, worst first (lowest own SNR, then most dB lost)."""
    own = [r for r in rows if r["int8"] and r["op"] not in ("QUANTIZE", "DEQUANTIZE") or r["op"] == "QUANTIZE"]
    return sorted(own, key=lambda r: (r.get("quant_snr_db", CAP_DB), -r["added_db"]))
