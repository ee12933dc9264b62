"""The per-layer table of ``edgepack debug-quant --target qualcomm``: where a QDQ model loses accuracy.

A layer is an ONNX node of the prepared model (``preprocess.prepare``), the name ``quantize(overrides=...)``
uses. Its float twin is the same tensor of the prepared fp32 model; its quantized value is what the QDQ
model's consumers read: the output of the ``DequantizeLinear`` after its ``QuantizeLinear`` (for an output
the quantizer renamed ``T_QuantizeLinear_Input`` the twin is ``T``: the quantizer folds a Relu/Clip into the
op before it, so ``T`` is the activation's output and the row stands for both).

Where the values come from: the QDQ model runs on onnxruntime's CPU provider with graph optimizations off
(every Q/DQ executes as written): the table is the quantization grid's own error, layer by layer. The model's
final outputs are measured on the HTP simulator, configured as the device the build compiles for (``figures``,
the gate's; ``cpu_figures`` = the same on CPU), and, with onnxruntime-qnn, one more simulator run exposes every
layer's value as a graph output to give each row ``htp_snr_db`` (the same against the fp32 twin, on HTP) and
``htp_added_db`` (dB HTP loses there beyond the CPU): where HTP's own kernels depart from the arithmetic. (Inside
an HTP partition a tensor is observable only as a graph output; exposing them all did not change what HTP
computes on the models measured, see ``_htp_columns``.)

Per row: ``snr_db`` / ``cosine`` (the error accumulated so far), ``quant_snr_db`` (the twin's values
fake-quantized with the layer's own output scale and zero point: the error this layer's activation
quantization adds, mean dB over channels so that one outlier channel shows as the collapse of the others),
``weight_snr_db`` (its dequantized weights against the float ones), ``added_db``, ``bits`` (8 or 16), and
``int8`` (the row format's "quantized" flag). Rows are ranked by ``edgepack.verify.layers.rank``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from edgepack_runtime.compare import CAP_DB, compare_runs, cosine, db, snr_db, summarize
from onnx import numpy_helper

from ...verify.layers import rank

DEBUG_SAMPLES = 8
HTP_SAMPLES = 1             # samples of the HTP-vs-CPU column (one simulator run with every layer exposed)
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_Q_SUFFIX = "_QuantizeLinear_Input"
_RANGE = {onnx.TensorProto.UINT8: (0, 255), onnx.TensorProto.INT8: (-128, 127),
          onnx.TensorProto.UINT16: (0, 65535), onnx.TensorProto.INT16: (-32768, 32767)}


@dataclass
class LayerTable:
    figures: dict           # gate figures of the QDQ model on HTP (held-out samples used)
    method: str
    layers: list[dict]      # graph order
    ranked: list[dict]      # worst first
    cpu_figures: dict | None = None   # the same figures with the QDQ model on onnxruntime CPU


def debug_layers(model: onnx.ModelProto, job) -> LayerTable:
    """The QDQ model at ``job.precision`` (w8a8 | w8a16, no mixed precision; ``--keep-float`` nodes float)
    against the prepared fp32 model: per-layer rows on onnxruntime CPU, final outputs on HTP (the gate's
    figures; on CPU, said so, when onnxruntime-qnn is not installed)."""
    from . import htp
    from .preprocess import prepare
    from .quantize import PRECISIONS, quantize
    activations, weights = PRECISIONS[job.precision]
    prepared = prepare(model)
    pinned = pinned_nodes(prepared, job.quant.keep_float)
    job.progress(f"quantizing to {job.precision} ({len(job.calibration.calib)} calibration samples)")
    method = {"auto": "minmax"}.get(job.quant.method, job.quant.method)
    qdq = quantize(model, job.calibration.calib, activations=activations, weights=weights,
                   overrides=dict.fromkeys(pinned, "float"), method=method, model_ranges=job.model_ranges)
    samples = job.calibration.holdout[:DEBUG_SAMPLES]
    names = [o.name for o in model.graph.output]
    from .mixed import device_options
    device = device_options(job) if htp.available() else None
    job.progress(f"running the QDQ model and its fp32 twin tensor by tensor ({len(samples)} samples, CPU"
                 f"{'; and on the HTP simulator, every layer exposed' if device else ''})")
    rows = layer_rows(prepared, qdq, samples, device)
    cpu = final_figures(_run(qdq, samples, names), job.reference, names, job.gate)
    if device:
        job.progress(f"running the QDQ model on the HTP simulator ({len(samples)} samples)")
        got = htp.run(qdq, samples, provider_options=device)
        figures = dict(final_figures(got, job.reference, names, job.gate), backend="htp")
    else:
        figures = dict(cpu, backend="onnxruntime-cpu (onnxruntime-qnn is not installed: no HTP figures)")
    figures["layers_backend"] = "onnxruntime-cpu"
    figures["cpu"] = {k: cpu[k] for k in ("passed", "min_cosine", "mean_cosine", "max_rel_error", "min_snr_db")}
    return LayerTable(figures, method, rows, rank(rows), cpu)


def pinned_nodes(prepared: onnx.ModelProto, keep_float) -> set[str]:
    """Node names for ``--keep-float`` entries (node names, or tensors: their producer)."""
    producer = {o: n.name for n in prepared.graph.node for o in n.output}
    names = {n.name for n in prepared.graph.node}
    return {k if k in names else producer[k] for k in keep_float if k in names or k in producer}


def layer_rows(fp32: onnx.ModelProto, qdq: onnx.ModelProto, samples: list[dict],
               device: dict | None = None) -> list[dict]:
    """Every quantized (or float) layer of ``qdq`` against its twin in ``fp32``, in graph order. With
    ``device`` (QNN provider options) each row also gets ``htp_snr_db`` / ``htp_added_db`` from the HTP
    simulator (``_htp_columns``)."""
    plan = _pairs(fp32, qdq)
    if not plan:
        return []
    twins = _run(fp32, samples, sorted({p["twin"] for p in plan}))
    got = _run(qdq, samples, sorted({p["value"] for p in plan}))
    if device is not None:
        _htp_columns(plan, qdq, samples[:HTP_SAMPLES], twins[:HTP_SAMPLES], got[:HTP_SAMPLES], device)
    inits = {t.name: t for t in qdq.graph.initializer}
    fp32_inits = {t.name: t for t in fp32.graph.initializer}
    snr_of: dict[str, float] = {}
    rows = []
    for p in plan:
        ref = np.concatenate([np.ravel(t[p["twin"]]) for t in twins]).astype(np.float64)
        val = np.concatenate([np.ravel(g[p["value"]]) for g in got]).astype(np.float64)
        snr_of[p["twin"]] = snr = snr_db(val, ref)
        before = [snr_of[i] for i in p["reads"] if i in snr_of]
        row = {"tensor": p["twin"], "op": p["op"], "origin": p["node"], "snr_db": snr, "cosine": cosine(val, ref),
               "added_db": max(0.0, (min(before) if before else CAP_DB) - snr), "int8": p["q"] is not None,
               **p.get("htp", {})}
        if p["q"] is not None:
            scale, zp, bits = _qparams(p["q"], inits)
            row["bits"] = bits
            row["quant_snr_db"] = _own_snr([t[p["twin"]] for t in twins], scale, zp, _RANGE[_elem(zp)])
        w = [_weight_snr(dq, inits, fp32_inits) for dq in p["weights"]]
        if any(v is not None for v in w):
            row["weight_snr_db"] = min(v for v in w if v is not None)
        rows.append(row)
    return rows


def _htp_columns(plan: list[dict], qdq: onnx.ModelProto, samples: list[dict], twins: list[dict],
                 cpu: list[dict], device: dict) -> None:
    """Adds ``p["htp"]`` to each row plan: ``htp_snr_db`` (the layer's value on the simulator, every layer made a
    graph output, against its fp32 twin) and ``htp_added_db`` (how many more dB HTP loses at this layer than the
    CPU computing the same QDQ arithmetic, beyond what it had lost already at the layer's inputs). Exposing the
    tensors does not change what HTP computes here (PP-OCR's first BatchNormalization: 0.4 dB from the CPU's
    value with 12 or with 200 tensors exposed), so this localises a loss of HTP's own kernels."""
    from . import htp
    m = onnx.ModelProto()
    m.CopyFrom(qdq)
    present = {o.name for o in m.graph.output}
    names = list(dict.fromkeys(p["value"] for p in plan))
    m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in present)
    outs = [o.name for o in m.graph.output]
    got = [dict(zip(outs, values)) for values in htp.run(m, samples, provider_options=device)]
    gap_of: dict[str, float] = {}
    for p in plan:
        ref = np.concatenate([np.ravel(t[p["twin"]]) for t in twins]).astype(np.float64)
        on_htp = snr_db(np.concatenate([np.ravel(g[p["value"]]) for g in got]), ref)
        on_cpu = snr_db(np.concatenate([np.ravel(g[p["value"]]) for g in cpu]), ref)
        gap_of[p["twin"]] = gap = max(0.0, on_cpu - on_htp)
        before = max([0.0] + [gap_of[i] for i in p["reads"] if i in gap_of])
        p["htp"] = {"htp_snr_db": on_htp, "htp_added_db": max(0.0, gap - before)}


def _pairs(fp32: onnx.ModelProto, qdq: onnx.ModelProto) -> list[dict]:
    """For each float output of each non-Q/DQ node of ``qdq`` that has a twin in ``fp32``: the tensor to read
    in each model, the QuantizeLinear node (None: left float), the weight DequantizeLinear nodes it reads."""
    fp32_tensors = {o for n in fp32.graph.node for o in n.output} | {i.name for i in fp32.graph.input}
    consumers: dict[str, list] = {}
    for n in qdq.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producer = {o: n for n in qdq.graph.node for o in n.output}
    inits = {t.name for t in qdq.graph.initializer}
    pairs = []
    for n in qdq.graph.node:
        if n.op_type in QDQ_OPS:
            continue
        reads = [_twin_of(i, producer) for i in n.input if i]
        weights = [producer[i] for i in n.input if i in producer and producer[i].op_type == "DequantizeLinear"
                   and producer[i].input[0] in inits]
        for o in n.output:
            twin = o[:-len(_Q_SUFFIX)] if o.endswith(_Q_SUFFIX) else o
            if not o or twin not in fp32_tensors:
                continue
            q = next((c for c in consumers.get(o, []) if c.op_type == "QuantizeLinear"), None)
            value = o
            if q is not None:
                dq = next((c for c in consumers.get(q.output[0], []) if c.op_type == "DequantizeLinear"), None)
                value = dq.output[0] if dq is not None else o
                q = q if dq is not None else None
            pairs.append({"node": n.name, "op": n.op_type, "twin": twin, "value": value, "q": q,
                          "reads": reads, "weights": weights})
    return pairs


def _twin_of(tensor: str, producer: dict) -> str:
    """The fp32 name of what a node reads: through DequantizeLinear <- QuantizeLinear back to the tensor."""
    seen = 0
    while tensor in producer and producer[tensor].op_type in QDQ_OPS and seen < 4:
        tensor, seen = producer[tensor].input[0], seen + 1
    return tensor[:-len(_Q_SUFFIX)] if tensor.endswith(_Q_SUFFIX) else tensor


def _run(model: onnx.ModelProto, samples: list[dict], names: list[str]) -> list[dict]:
    """``names`` (any tensors of ``model``) for each sample, onnxruntime CPU, graph optimizations off."""
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    present = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in present)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}
    return [dict(zip(names, sess.run(names, {k: v for k, v in s.items() if k in wanted}))) for s in samples]


def _elem(tensor: onnx.TensorProto) -> int:
    return tensor.data_type


def _qparams(q: onnx.NodeProto, inits: dict):
    scale = numpy_helper.to_array(inits[q.input[1]]).astype(np.float64)
    zp = inits[q.input[2]] if len(q.input) > 2 and q.input[2] in inits else None
    if zp is None:
        zp = numpy_helper.from_array(np.zeros((), np.uint8))
    bits = 16 if _elem(zp) in (onnx.TensorProto.UINT16, onnx.TensorProto.INT16) else 8
    return scale, zp, bits


def _own_snr(values: list[np.ndarray], scale, zp: onnx.TensorProto, qrange) -> float:
    """Mean over channels of the SNR of ``values`` fake-quantized with (scale, zero point)."""
    z = numpy_helper.to_array(zp).astype(np.float64)
    x = np.stack([np.asarray(v, np.float64) for v in values])          # [samples, *shape]
    fake = (np.clip(np.round(x / scale) + z, *qrange) - z) * scale
    axis = 2 if x.ndim == 5 else x.ndim - 1                              # NCHW: C; else the last axis
    if x.ndim < 3:
        return snr_db(fake, x)
    xs, es = np.moveaxis(x, axis, 0), np.moveaxis(fake - x, axis, 0)
    ff = np.sum(xs.reshape(xs.shape[0], -1) ** 2, axis=1)
    ee = np.sum(es.reshape(es.shape[0], -1) ** 2, axis=1)
    per = [db(s, n) for s, n in zip(ff, ee) if s > 0]
    return float(np.mean(per)) if per else CAP_DB


def _weight_snr(dq: onnx.NodeProto, inits: dict, fp32_inits: dict) -> float | None:
    out = dq.output[0]
    name = next((c for c in (out, out.removesuffix("_DequantizeLinear_Output")) if c in fp32_inits), None)
    if name is None or dq.input[0] not in inits:
        return None
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
    zp = (numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64)
          if len(dq.input) > 2 and dq.input[2] in inits else np.zeros_like(scale))
    axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return snr_db((q - zp) * scale, numpy_helper.to_array(fp32_inits[name]))


def final_figures(got: list[list[np.ndarray]] | list[dict], reference: list[dict], names: list[str], gate) -> dict:
    """Gate figures of outputs (lists in ``names`` order, or dicts) against ``reference``."""
    dicts = [g if isinstance(g, dict) else dict(zip(names, g)) for g in got]
    return dict(summarize(compare_runs(dicts, reference[:len(dicts)], names), gate), samples=len(dicts))
