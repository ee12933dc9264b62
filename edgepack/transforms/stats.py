"""Run the float model on calibration samples and reduce chosen intermediate tensors as they go by."""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort


def session(model: onnx.ModelProto, extra: list[str]) -> ort.InferenceSession:
    """An onnxruntime CPU session of ``model`` that also returns the tensors ``extra`` (graph optimizations
    off, so every intermediate tensor still exists)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in extra:
        if name not in have:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def observe(model: onnx.ModelProto, samples: list[dict], names: list[str],
            visit: Callable[[str, np.ndarray], None]) -> None:
    """Call ``visit(name, value)`` for each of ``names`` on each sample."""
    if not names:
        return
    sess = session(model, names)
    feeds = {i.name for i in sess.get_inputs()}
    for sample in samples:
        values = sess.run(names, {k: v for k, v in sample.items() if k in feeds})
        for name, value in zip(names, values):
            visit(name, value)


def channel_means(model: onnx.ModelProto, samples: list[dict], names: list[str], axes: dict[str, int]) -> dict:
    """Mean of each tensor per channel (``axes[name]``: the channel axis) over all samples and positions."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}

    def visit(name, value):
        v = np.moveaxis(np.asarray(value, np.float64), axes[name], -1)
        flat = v.reshape(-1, v.shape[-1])
        sums[name] = sums.get(name, 0) + flat.sum(axis=0)
        counts[name] = counts.get(name, 0) + flat.shape[0]

    observe(model, samples, names, visit)
    return {n: sums[n] / max(counts[n], 1) for n in sums}


def mean_maps(model: onnx.ModelProto, samples: list[dict], names: list[str]) -> dict[str, np.ndarray]:
    """Each tensor averaged over the samples only (positions kept): what a linear layer's expected output
    needs, padding and borders included."""
    sums: dict[str, np.ndarray] = {}

    def visit(name, value):
        sums[name] = sums.get(name, 0) + np.asarray(value, np.float64)

    observe(model, samples, names, visit)
    return {n: (v / len(samples)).astype(np.float32) for n, v in sums.items()}


def fake_quant_weight(w: np.ndarray, axis: int) -> np.ndarray:
    """Symmetric per-channel int8 weights in [-127, 127], as the int8 targets store them, back in float."""
    w = np.asarray(w, np.float32)
    moved = np.moveaxis(w, axis, 0)
    scale = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0).reshape(-1, *[1] * (moved.ndim - 1))
    q = np.clip(np.round(moved / scale), -127, 127) * scale
    return np.moveaxis(q, 0, axis).astype(np.float32)


def fake_quant_activation(x: np.ndarray) -> np.ndarray:
    """Per-tensor asymmetric int8 (min/max range widened to 0), back in float."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = max((hi - lo) / 255.0, 1e-12)
    zp = np.round(-128 - lo / scale)
    return ((np.clip(np.round(x / scale) + zp, -128, 127) - zp) * scale).astype(np.float32)
