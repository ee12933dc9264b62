"""The ``qualcomm`` target: an HTP-ready QDQ ONNX model (w8a8 or w8a16) plus, when onnxruntime-qnn is here, a
QNN context binary compiled for the device profile's HTP and a placement report; verified on the HTP
simulator (backend ``qnn``), or on onnxruntime's CPU when onnxruntime-qnn is missing (said in the manifest).
"""
from __future__ import annotations

import time

import onnx
from edgepack_runtime.backends import qnn_ep

from ...errors import BackendError, EdgepackError
from ..base import Converted, Job, Requirement, Target

PRECISIONS = ("w8a8", "w8a16")
METHODS = {"auto": "minmax", "minmax": "minmax", "percentile": "percentile", "entropy": "entropy"}


class QualcommTarget(Target):
    name = "qualcomm"
    format = "qnn"
    summary = ("Qualcomm Hexagon NPU (HTP): QDQ ONNX for onnxruntime's QNN EP, with a QNN context binary "
               "compiled on the host when onnxruntime-qnn is installed")
    precisions = PRECISIONS
    default_precision = "w8a8"
    debug_precision = "w8a8"            # what `edgepack debug-quant --target qualcomm` examines by default
    debug_precisions = PRECISIONS
    requires = (Requirement("onnxruntime", "onnxruntime", "QDQ quantization (onnxruntime.quantization) and "
                                                         "CPU verification"),)
    optional = (Requirement("onnxruntime_qnn", "onnxruntime-qnn", "the HTP simulator (verification), "
                                                                  "context binaries and the placement report"),)

    @property
    def backend(self) -> str:
        """``qnn`` (HTP simulator / device) with onnxruntime-qnn, else ``onnxruntime`` (CPU) on the QDQ model."""
        return "qnn" if qnn_ep.installed() else "onnxruntime"

    def registry(self):
        from .ops import HTP_OPS
        return HTP_OPS

    def quant_choices(self) -> dict[str, tuple[str, ...]]:
        """Accepted values of the QuantOptions fields this target reads."""
        return {"method": tuple(METHODS)}

    def preflight(self, model: onnx.ModelProto) -> None:
        """onnxruntime runs any op (HTP or its CPU): only a quantized model's Q/DQ nodes that have no float
        meaning (a quantized graph input or output) are refused here."""
        from ..quantized_in import preflight as qdq_preflight
        qdq_preflight(model, lambda m: None, self.name)

    def quantize_debug(self, model: onnx.ModelProto, job: Job):
        """The per-layer table of the QDQ model at ``job.precision`` without mixed precision (``debug.py``)."""
        from .debug import debug_layers
        model, job, _ = _quantized_in(model, job)
        return debug_layers(model, job)

    def convert(self, model: onnx.ModelProto, job: Job) -> Converted:
        from .device import for_profiles
        from .mixed import when_needed
        from .preprocess import prepare
        model, job, carried = _quantized_in(model, job)
        job.progress("preparing the model for QNN (opset, fusions, rewrites)")
        prepared = prepare(model)
        t0 = time.perf_counter()
        prepared, transforms = self.transform(prepared, job)
        qdq, overrides = self.quantize_model(prepared, job)
        qdq, mixed = when_needed(prepared, qdq, job)        # the mixed-precision search, if the gate fails
        if mixed:
            overrides = {**dict.fromkeys(mixed["a16"], "a16"), **dict.fromkeys(mixed["float"], "float")}
        quantize_seconds = time.perf_counter() - t0
        data = qdq.SerializeToString()
        files = {self.path("model.qdq.onnx"): data}
        device = for_profiles(job.profiles)
        context, reason, placement, warnings = self._compile(qdq, data, device, job, files)
        if job.require_npu:
            from .placement import require_npu
            require_npu(placement, self.name)
        activations, weights = _types(job.precision)
        extra = {"qnn": {"activations": activations, "weights": weights, "per_channel": True,
                         "versions": qnn_ep.versions() if qnn_ep.installed() else None,
                         "context": context, "context_reason": reason, "placement": placement,
                         "overrides": overrides, "device": device}}
        if mixed:
            extra["qnn"]["mixed_precision"] = mixed
        if activations == "uint16":
            from .quantize import eight_bit_sigmoids
            narrow = eight_bit_sigmoids(qdq)
            if narrow:       # model outputs a 16-bit Sigmoid's fixed grid cannot resolve (eight_bit_outputs)
                extra["qnn"]["eight_bit_outputs"] = narrow
        if transforms:
            extra["qnn"]["transforms"] = transforms
        if carried is not None:
            extra["qnn"]["quantized_in"] = _kept(qdq, carried, job.model_ranges)
        info = {"qdq_ops": _histogram(qdq), "quantize_seconds": round(quantize_seconds, 3),
                "calibration_samples": len(_calib(job))}
        io = {"inputs": [{"name": v.name, "perm": None} for v in qdq.graph.input],
              "outputs": [{"name": v.name, "perm": None} for v in qdq.graph.output]}
        return Converted(files, self.path("model.qdq.onnx"), io, info, extra, warnings)

    def transform(self, prepared: onnx.ModelProto, job: Job) -> tuple[onnx.ModelProto, dict | None]:
        """``edgepack.transforms`` before quantization (``--transform``; each ``auto`` one kept when the plain
        QDQ model's held-out figures improve): (model, manifest record or None)."""
        from .transforms import choose_transforms
        activations, weights = _types(job.precision)
        overrides = keep_float_overrides(prepared, job.quant.keep_float)
        return choose_transforms(prepared, job, overrides, activations, weights, METHODS[job.quant.method])

    def quantize_model(self, prepared: onnx.ModelProto, job: Job) -> tuple[onnx.ModelProto, dict[str, str]]:
        """The QDQ model at ``job.precision`` and the per-node overrides used (``--keep-float`` -> "float")."""
        from .quantize import quantize
        overrides = keep_float_overrides(prepared, job.quant.keep_float)
        activations, weights = _types(job.precision)
        job.progress(f"QDQ quantization for HTP ({job.precision}: {activations} activations, {weights} weights "
                     f"per channel, {len(_calib(job))} calibration samples)")
        qdq = quantize(prepared, _calib(job), activations=activations, weights=weights, per_channel=True,
                       overrides=overrides, method=METHODS[job.quant.method], model_ranges=job.model_ranges)
        return qdq, overrides

    def _compile(self, qdq, data: bytes, device: dict, job: Job, files: dict):
        """(context entry, reason there is none, placement, warnings): the context binary when it can be made."""
        from .context import compile_context
        from .placement import estimate, report
        if not qnn_ep.installed():
            reason = (f"no QNN context binary: onnxruntime-qnn is not installed on the build host (pip install "
                      f"{qnn_ep.PIP}); the bundle holds the portable QDQ model only, verified on onnxruntime CPU")
            return None, reason, estimate(qdq), [reason]
        job.progress(f"compiling the QNN context binary for HTP v{device['htp_arch']} (SoC {device['soc_model']}, "
                     f"{device['source']})")
        try:
            compiled = compile_context(data, htp_arch=device["htp_arch"], soc_model=device["soc_model"])
        except BackendError as exc:
            if job.require_npu:
                raise EdgepackError(f"--require-npu: {exc.message}", hint=exc.hint) from exc
            reason = f"no QNN context binary: {exc.message}"
            return None, reason, report(qdq, None), [reason]
        if compiled.data is None:
            reason = "no QNN context binary: HTP takes none of the model's nodes (see the placement report)"
            return None, reason, report(qdq, None, compiled.log), [reason]
        file = self.path("model.ctx.onnx")
        files[file] = compiled.data
        return {"file": file, **compiled.info}, None, report(qdq, compiled.model, compiled.log), []


def _quantized_in(model: onnx.ModelProto, job: Job):
    """(model, job, QdqInfo): a quantized (QDQ / QOperator) model becomes its float twin, and the activation
    ranges its own scales cover go on the job (``Job.model_ranges``), so that every quantization of this build
    (plain, transforms, mixed precision, debug) uses them instead of calibrated ones. A float model: as given,
    and None."""
    import dataclasses

    from ..quantized_in import float_view
    flt, info = float_view(model)
    if info is None:
        return model, job, None
    ranges = {name: a.range() for name, a in info.activations.items() if not a.per_axis}
    job.progress(f"quantized model in: its float twin, quantized again with its own {len(ranges)} activation "
                 f"ranges")
    return flt, dataclasses.replace(job, model_ranges=ranges), info


_QRANGE = {onnx.TensorProto.UINT8: (0, 255), onnx.TensorProto.INT8: (-128, 127),
           onnx.TensorProto.UINT16: (0, 65535), onnx.TensorProto.INT16: (-32768, 32767)}   # zero point type -> (qmin, qmax)


def _kept(qdq: onnx.ModelProto, info, ranges: dict) -> dict:
    """The manifest's ``qnn.quantized_in``: what the quantized model carried (``info``, its activation
    ``ranges``), how many of its 8-bit weight grids the QDQ model for HTP holds unchanged, and how many of its
    activation ranges the shipped model's QuantizeLinear nodes cover (by tensor name: fusions remove some;
    within one step of the shipped grid)."""
    from onnx import numpy_helper

    from ...model.qdq import eight_bit_weights, grid_key, weight_quant
    inits = {t.name: t for t in qdq.graph.initializer}
    used = set()
    for node in qdq.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in ranges or node.input[1] not in inits:
            continue
        s = float(numpy_helper.to_array(inits[node.input[1]]).reshape(-1)[0])
        zp_t = inits.get(node.input[2]) if len(node.input) > 2 else None
        zp = float(numpy_helper.to_array(zp_t).reshape(-1)[0]) if zp_t is not None else 0.0
        qmin, qmax = _QRANGE.get(zp_t.data_type if zp_t is not None else onnx.TensorProto.UINT8, (0, 255))
        lo, hi = ranges[node.input[0]]
        if abs((qmin - zp) * s - min(lo, 0.0)) <= s and abs((qmax - zp) * s - max(hi, 0.0)) <= s:
            used.add(node.input[0])
    grids = {grid_key(weight_quant(node, {n: numpy_helper.to_array(inits[n]) for n in node.input if n}).grid)
             for node in qdq.graph.node
             if node.op_type == "DequantizeLinear" and all(n in inits for n in node.input if n)}
    eight = eight_bit_weights(info)
    return {"activation_ranges_in_model": len(ranges),
            "activation_types": sorted({a.dtype for a in info.activations.values()}),
            "dequantized": info.counts, "int8_weights_in_model": len(eight),
            "weight_grid_kept": sum(1 for w in eight if grid_key(w.grid) in grids),
            "activation_ranges_used": len(used)}


def keep_float_overrides(model: onnx.ModelProto, names) -> dict[str, str]:
    """``--keep-float`` names (ONNX node names, or tensors they produce) as "float" overrides; EdgepackError
    naming those the model does not have."""
    by_output = {o: n.name for n in model.graph.node for o in n.output}
    nodes = {n.name for n in model.graph.node}
    out, unknown = {}, []
    for name in names:
        node = name if name in nodes else by_output.get(name)
        if node is None:
            unknown.append(name)
        else:
            out[node] = "float"
    if unknown:
        raise EdgepackError(f"--keep-float names no node or tensor of the model: {', '.join(unknown)}",
                            hint="use ONNX node names (see the placement report or `edgepack debug-quant`)")
    return out


def _types(precision: str) -> tuple[str, str]:
    from .quantize import PRECISIONS as TYPES
    return TYPES[precision]


def _calib(job: Job) -> list[dict]:
    return list(job.calibration.calib or job.calibration.all)


def _histogram(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


TARGET = QualcommTarget()
