"""The onnxruntime baseline for full-integer int8: static QDQ quantization, as a user of onnxruntime would do it.

``ort_quantize_static`` runs ``quant_pre_process`` (shape inference + onnxruntime graph optimizations, e.g.
BatchNormalization folded into Conv, MatMul+Add fused into Gemm) and then
``onnxruntime.quantization.quantize_static`` with ``QuantFormat.QDQ``, int8 activations (asymmetric, per
tensor), int8 symmetric weights (per channel by default: ``quantize_static``'s own default is per tensor)
and MinMax calibration (Percentile / Entropy / Distribution by name). ``nodes_to_exclude`` names ONNX nodes
of the *input* model to leave in float; ``ort_quantize`` maps them onto the pre-processed graph (fused nodes
are renamed ``<name>/MatMulAddFusion``) and says which it could not find. ``float_nodes`` reads back which
nodes the QDQ model leaves unquantized, ``run_ort`` runs a model, ``agreement`` compares outputs with the
fp32 model's (the older measure; ``benchmarks/bench_int8_ort.py`` uses the runtime's ``compare_output``).

    python benchmarks/ort_qdq.py                        # small_cnn, small_transformer, outlier_cnn; MinMax
    python benchmarks/ort_qdq.py --method percentile --calib 256 small_cnn
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quant_pre_process, quantize_static)

_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
    "distribution": CalibrationMethod.Distribution,
}


class _Samples(CalibrationDataReader):
    """Feeds the given per-sample input dicts once, in order."""

    def __init__(self, samples: list[dict[str, np.ndarray]]):
        self._samples = samples
        self._i = 0
        self.served = 0             # samples handed to onnxruntime (over every pass)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._samples):
            return None
        sample = self._samples[self._i]
        self._i += 1
        self.served += 1
        return {k: np.ascontiguousarray(v) for k, v in sample.items()}

    def rewind(self) -> None:
        self._i = 0


# quantize_static's own defaults in onnxruntime 1.32 (checked against its signature in the tests):
# QDQ, per-tensor weights, QInt8 activations and weights, MinMax, WeightSymmetric, asymmetric activations.
LIBRARY_DEFAULTS = {"per_channel": False, "activation_type": "int8", "weight_type": "int8", "method": "minmax"}
# What ``ort_quantize_static`` does unless told otherwise (the recipe the benchmarks have always used).
RECIPE = {"per_channel": True, "activation_type": "int8", "weight_type": "int8", "method": "minmax",
          "preprocess": True}
# Percentile made to match edgepack's (ranges.PERCENTILE = 99.99: the 0.01st and 99.99th percentile, each
# side on its own): onnxruntime's default is a *symmetric* range at 99.999 over a 2,048-bin histogram; its
# asymmetric form cuts (100 - p) / 2 per side, so p = 99.98 cuts 0.01% per side.
PERCENTILE_LIKE_EDGEPACK = {"CalibPercentile": 99.98, "CalibTensorRangeSymmetric": False}
_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}


def ort_quantize_static(model: onnx.ModelProto, calib: list[dict[str, np.ndarray]], out_path: str | Path,
                        per_channel: bool = True, method: str = "minmax", preprocess: bool = True,
                        extra_options: dict | None = None, nodes_to_exclude=(),
                        activation_type: str = "int8", weight_type: str = "int8") -> Path:
    """Quantize ``model`` to a QDQ int8 model at ``out_path`` (returned), calibrated on ``calib`` (a list of
    ``{input name: array shaped like the input}``). ``method``: minmax, percentile, entropy or distribution."""
    return ort_quantize(model, calib, out_path, per_channel=per_channel, method=method, preprocess=preprocess,
                        extra_options=extra_options, nodes_to_exclude=nodes_to_exclude,
                        activation_type=activation_type, weight_type=weight_type)["path"]


def ort_quantize(model: onnx.ModelProto, calib: list[dict[str, np.ndarray]], out_path: str | Path, *,
                 per_channel: bool = True, method: str = "minmax", preprocess: bool = True,
                 extra_options: dict | None = None, nodes_to_exclude=(), activation_type: str = "int8",
                 weight_type: str = "int8", reader=None) -> dict:
    """``ort_quantize_static`` with a report: ``path``, ``excluded`` (the node names passed to onnxruntime,
    i.e. ``nodes_to_exclude`` mapped onto the pre-processed graph), ``unmatched`` (names it has no node
    for), ``settings`` (every argument given to ``quantize_static``) and ``calibration_samples`` (how many
    samples onnxruntime read). ``reader`` replaces the calibration data reader (tests use it to record)."""
    if not calib:
        raise ValueError("ort_quantize_static needs at least one calibration sample")
    try:
        calibrate_method = _METHODS[method.lower()]
    except KeyError:
        raise ValueError(f"unknown calibration method {method!r}; one of {sorted(_METHODS)}") from None
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    options = {"WeightSymmetric": True, "ActivationSymmetric": False}
    options.update(extra_options or {})
    reader = reader or _Samples(calib)
    with tempfile.TemporaryDirectory(prefix="ort_qdq_") as tmp:
        src = Path(tmp) / "model.onnx"
        onnx.save(model, str(src))
        if preprocess:
            pre = Path(tmp) / "model.pre.onnx"
            quant_pre_process(str(src), str(pre))
            src = pre
        excluded, unmatched = map_nodes(model, onnx.load(str(src)), nodes_to_exclude)
        settings = {"quant_format": "QDQ", "per_channel": per_channel, "activation_type": activation_type,
                    "weight_type": weight_type, "calibrate_method": calibrate_method.name,
                    "nodes_to_exclude": excluded, "extra_options": dict(options), "preprocess": preprocess}
        quantize_static(str(src), str(out_path), reader, quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=_TYPES[activation_type],
                        weight_type=_TYPES[weight_type], calibrate_method=calibrate_method,
                        nodes_to_exclude=list(excluded) or None, extra_options=options)
    return {"path": out_path, "excluded": excluded, "unmatched": unmatched, "settings": settings,
            "calibration_samples": getattr(reader, "served", None)}


def map_nodes(original: onnx.ModelProto, pre: onnx.ModelProto, names) -> tuple[list[str], list[str]]:
    """Names of ``original``'s nodes -> names in the pre-processed model ``pre``: the same name, else the
    nodes it was fused into (``<name>/...``), else the node now producing one of its outputs."""
    pre_names = [n.name for n in pre.graph.node]
    producer = {o: n.name for n in pre.graph.node for o in n.output}
    outputs = {n.name: list(n.output) for n in original.graph.node}
    out, missing = [], []
    for name in names:
        found = [name] if name in pre_names else [p for p in pre_names if p.startswith(name + "/")]
        if not found:
            found = [producer[o] for o in outputs.get(name, []) if o in producer]
        if found:
            out.extend(f for f in found if f not in out)
        else:
            missing.append(name)
    return out, missing


def float_nodes(qdq: onnx.ModelProto | str | Path) -> list[str]:
    """Nodes (other than Q/DQ) a QDQ model leaves in float: a float input that does not come from a
    DequantizeLinear (a float weight, or an activation not quantized), or a float output that does not go
    into a QuantizeLinear. Everything else (all float inputs dequantized, all outputs quantized) is what
    onnxruntime fuses into an integer kernel."""
    m = qdq if isinstance(qdq, onnx.ModelProto) else onnx.load(str(qdq))
    qdq_ops = ("QuantizeLinear", "DequantizeLinear")
    producer = {o: n for n in m.graph.node for o in n.output}
    users: dict[str, list] = {}
    for n in m.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    try:
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:       # types then come from what the model declares; undeclared tensors count as float
        pass
    elem = {t.name: t.data_type for t in m.graph.initializer}
    elem.update({v.name: v.type.tensor_type.elem_type
                 for v in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output)})
    elem.update({n.output[0]: onnx.TensorProto.FLOAT for n in m.graph.node if n.op_type == "DequantizeLinear"})
    elem.update({n.output[0]: onnx.TensorProto.INT8 for n in m.graph.node if n.op_type == "QuantizeLinear"})
    floats = {t for n in m.graph.node for t in list(n.input) + list(n.output)
              if t and elem.get(t, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT}
    out = []
    for n in m.graph.node:
        if n.op_type in qdq_ops:
            continue
        ins = [i for i in n.input if i and i in floats]
        outs = [o for o in n.output if o and o in floats]
        dq_in = all(i in producer and producer[i].op_type == "DequantizeLinear" for i in ins)
        q_out = all(users.get(o) and all(u.op_type == "QuantizeLinear" for u in users[o]) for o in outs)
        if not (dq_in and q_out):
            out.append(n.name)
    return out


def run_ort(path: str | Path | onnx.ModelProto, samples: list[dict[str, np.ndarray]],
            optimize: bool | None = None) -> list[dict[str, np.ndarray]]:
    """Outputs (name -> array) of the model at ``path`` for each input dict, CPU provider, one thread.
    ``optimize=False``: no graph optimization (a QDQ model's Q/DQ nodes then run as written, in float,
    instead of fused into integer kernels); ``True``: full; ``None``: full, except for a quantized model on a
    CPU whose fused int8 kernels saturate (``edgepack_runtime.backends.ort.cpu_options``: x86 without VNNI),
    which then runs as it is defined. Accuracy rows use ``None``; latency always times the fused session."""
    from edgepack_runtime.backends.ort import cpu_options
    src = path.SerializeToString() if isinstance(path, onnx.ModelProto) else str(path)
    opts = cpu_options(src if isinstance(src, bytes) else Path(src).read_bytes()) if optimize is None \
        else ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if optimize is False:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return [dict(zip(names, sess.run(names, sample))) for sample in samples]


def agreement(got: list[dict[str, np.ndarray]], ref: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Compare per-sample outputs with reference ones (e.g. fp32). Every output of a sample is flattened and
    concatenated for the cosine and SNR; top-1 agreement needs argmax over the last axis to match in every
    output. Returns ``cosine_min`` / ``cosine_mean`` (over samples), ``snr_db`` (over all samples:
    ``10 log10(sum ref^2 / sum (got-ref)^2)``), ``top1`` (fraction of samples that agree) and ``n``."""
    if len(got) != len(ref) or not ref:
        raise ValueError(f"agreement needs as many outputs as references ({len(got)} vs {len(ref)})")
    cosines, agree = [], []
    signal = noise = 0.0
    for g, r in zip(got, ref):
        names = list(r)
        gv = np.concatenate([np.asarray(g[k], np.float64).ravel() for k in names])
        rv = np.concatenate([np.asarray(r[k], np.float64).ravel() for k in names])
        ng, nr = np.linalg.norm(gv), np.linalg.norm(rv)
        if ng == 0 and nr == 0:
            cosines.append(1.0)
        elif ng == 0 or nr == 0:
            cosines.append(0.0)
        else:
            cosines.append(float(gv @ rv / (ng * nr)))
        signal += float(rv @ rv)
        noise += float((gv - rv) @ (gv - rv))
        agree.append(all(np.array_equal(np.argmax(np.asarray(g[k]), axis=-1), np.argmax(np.asarray(r[k]), axis=-1))
                         for k in names))
    snr = float("inf") if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else float("-inf"))
    return {"cosine_min": float(min(cosines)), "cosine_mean": float(np.mean(cosines)), "snr_db": float(snr),
            "top1": float(np.mean(agree)), "n": len(ref)}


def evaluate(fitted, calib_n: int = 200, method: str = "minmax", per_channel: bool = True,
             out_dir: str | Path | None = None) -> dict:
    """fp32 and ORT-QDQ-int8 test accuracy of an ``edgepack.testing.fitted.Fitted`` model, and the int8
    outputs' agreement with fp32. Calibrates on the first ``calib_n`` *training* samples."""
    samples = [{fitted.input_name: x} for x in fitted.x_test]
    calib = fitted.calibration(calib_n, split="train")
    with tempfile.TemporaryDirectory(prefix="ort_qdq_eval_") as tmp:
        out = Path(out_dir or tmp) / f"{fitted.name}.qdq.onnx"
        ort_quantize_static(fitted.model, calib, out, per_channel=per_channel, method=method)
        got = run_ort(out, samples)
    ref = run_ort(fitted.model, samples)
    out_name = fitted.model.graph.output[0].name
    return {"fp32_accuracy": fitted.accuracy([r[out_name] for r in ref]),
            "int8_accuracy": fitted.accuracy([g[out_name] for g in got]),
            "agreement": agreement(got, ref)}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from edgepack.testing import fitted as fitted_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["small_cnn", "small_transformer", "outlier_cnn"])
    ap.add_argument("--method", default="minmax", choices=sorted(_METHODS))
    ap.add_argument("--calib", type=int, default=200, help="calibration samples (from the training split)")
    ap.add_argument("--per-tensor", action="store_true", help="per-tensor weights instead of per-channel")
    ap.add_argument("--cache", default=None, help="cache folder for the fitted models")
    args = ap.parse_args(argv)
    print(f"onnxruntime {ort.__version__} QDQ int8 (activations asym per-tensor, weights sym "
          f"{'per-tensor' if args.per_tensor else 'per-channel'}), {args.method}, {args.calib} calibration samples")
    print(f"{'model':18} {'fp32 acc':>8} {'int8 acc':>8} {'top1 agr':>8} {'min cos':>8} {'SNR dB':>7}")
    for name in args.models:
        fm = fitted_models.build(name, cache_dir=args.cache)
        r = evaluate(fm, args.calib, args.method, per_channel=not args.per_tensor)
        a = r["agreement"]
        print(f"{name:18} {r['fp32_accuracy']:8.4f} {r['int8_accuracy']:8.4f} {a['top1']:8.4f} "
              f"{a['cosine_min']:8.4f} {a['snr_db']:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
