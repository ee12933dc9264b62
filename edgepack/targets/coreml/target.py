"""The ``coreml`` target: an ML Program (``.mlpackage``) translated from ONNX by our own op registry with
the coremltools MIL builder, optionally weight-compressed, with a Neural Engine compatibility report.
Verified by Core ML on macOS and by the numpy MIL reference executor (``coreml-reference``) elsewhere."""
from __future__ import annotations

import sys

import onnx

from ..base import Converted, Job, Requirement, Target

PRECISIONS = ("fp16", "fp32", "w8", "w8a8", "palettize8", "palettize6", "palettize4", "prune", "w4-block",
              "prune-palettize4")
ANE_SAMPLES = 8           # calibration samples the fp16 range statistics are taken on


class CoreMLTarget(Target):
    name = "coreml"
    format = "mlpackage"
    summary = "Core ML ML Program for Apple devices (Neural Engine, GPU, CPU): our own ONNX->MIL translator"
    precisions = PRECISIONS
    default_precision = "fp16"
    debug_precision = "palettize4"     # what `edgepack debug-quant --target coreml` examines by default
    debug_precisions = tuple(p for p in PRECISIONS if p != "fp32")
    backend = "coreml" if sys.platform == "darwin" else "coreml-reference"
    requires = (Requirement("coremltools", "coremltools",
                            "the MIL builder, ML Program serialization and weight compression"),)

    def quantize_debug(self, model: onnx.ModelProto, job: Job):
        """The compressed program against its fp32 twin, value by value (``debug.py``)."""
        from . import compress
        from .debug import debug_layers
        from .deploy import from_profiles
        deployment = from_profiles(job.profiles)
        compress.check(job.precision, deployment)
        from ..quantized_in import float_view
        return debug_layers(float_view(model)[0], job, deployment)

    def registry(self):
        from . import ops  # noqa: F401
        from .registry import COREML
        return COREML

    def preflight(self, model: onnx.ModelProto) -> None:
        from ..quantized_in import preflight as qdq_preflight
        from .convert import preflight
        qdq_preflight(model, preflight, self.name)      # a quantized model is checked as its float twin

    def convert(self, model: onnx.ModelProto, job: Job) -> Converted:
        from . import ane, compress
        from .convert import discard, lower, package, validate, zip_package
        from .deploy import from_profiles
        from ..quantized_in import float_view
        deployment = from_profiles(job.profiles)
        compress.check(job.precision, deployment)
        model, qdq = float_view(model)          # QDQ / QOperator in: Core ML gets its float twin
        job.progress(f"translating ONNX to MIL ({deployment})")
        compute = "fp32" if job.precision == "fp32" else "fp16"
        program = lower(model, deployment, compute)
        mlmodel = package(program, precision=compute, deployment=deployment, metadata=_metadata(model, job,
                                                                                               deployment))
        extra, info = {}, {"deployment_target": deployment, "compute_precision": compute}
        if program.edgepack_clamped:
            info["fp16_clamped_constants"] = program.edgepack_clamped
        if qdq is not None:
            info["dequantized"] = qdq.counts
        if job.precision == "w8a8":
            from .activations import w8a8
            info["fp16_size"] = len(zip_package(mlmodel))
            quantized, extra["activations"] = w8a8(mlmodel, model, job, _evaluator(model, job))
            extra["compression"] = compress.summarize(mlmodel._mil_program, quantized._mil_program, "w8")
            discard(mlmodel)
            mlmodel = quantized
        elif job.precision in compress.MODES:
            job.progress(f"compressing weights ({job.precision})")
            info["fp16_size"] = len(zip_package(mlmodel))
            compressed = compress.compress(mlmodel, job.precision)
            extra["compression"] = compress.summarize(mlmodel._mil_program, compressed._mil_program, job.precision)
            if qdq is not None and job.precision == "w8":
                extra["compression"]["quantized_in"] = compress.model_grids(compressed._mil_program, qdq)
            discard(mlmodel)
            mlmodel = compressed
        data = zip_package(mlmodel)
        discard(mlmodel)
        spec, final = validate(data)
        info.update(mil_ops=_histogram(final), weights_bytes=_weights_size(data))
        job.progress("ANE report: fp32 activation ranges on calibration samples")
        samples = list(job.calibration.calib or job.calibration.all)[:ANE_SAMPLES]
        stats = ane.activation_stats(model, samples, ANE_SAMPLES)
        extra["ane"] = ane.report(final, compute, stats, len(samples), ane.flexible_inputs(spec))
        io = {"inputs": [{"name": v.name, "perm": None, "coreml_name": s.name}
                         for v, s in zip(model.graph.input, spec.description.input)],
              "outputs": [{"name": v.name, "perm": None, "coreml_name": s.name}
                          for v, s in zip(model.graph.output, spec.description.output)]}
        file = self.path("model.mlpackage.zip")
        return Converted({file: data}, file, io, info, extra)


def _evaluator(model: onnx.ModelProto, job: Job):
    """``evaluate(zipped package, n)``: the gate figures of the reference executor's outputs on the first ``n``
    held-out samples (all when None) against the fp32 reference."""
    from edgepack_runtime.backends.coreml_ref.program import load
    from edgepack_runtime.compare import compare_runs, summarize
    names = [o.name for o in model.graph.output]

    def evaluate(data: bytes, n: int | None) -> dict:
        program = load(data)
        samples = job.calibration.holdout[:n] if n else job.calibration.holdout
        got = []
        for sample in samples:
            out = program.run({c: sample[v.name] for c, v in zip(program.input_names, model.graph.input)})
            got.append({o: out[c] for o, c in zip(names, program.output_names)})
        return summarize(compare_runs(got, job.reference[:len(samples)], names), job.gate)
    return evaluate


def _metadata(model: onnx.ModelProto, job: Job, deployment: str) -> dict:
    from ... import __version__
    name = job.model_name or model.graph.name or "model"
    return {"author": "edgepack", "version": job.model_version or str(model.model_version or 1),
            "short_description": f"{name}: converted from ONNX by edgepack {__version__} "
                                 f"({job.precision}, {deployment})",
            "edgepack.precision": job.precision, "edgepack.version": __version__}


def _histogram(program) -> dict:
    counts: dict[str, int] = {}
    for op in program.functions["main"].operations:
        if op.op_type != "const":
            counts[op.op_type] = counts.get(op.op_type, 0) + 1
    return dict(sorted(counts.items()))


def _weights_size(data: bytes) -> int:
    import io
    import zipfile
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sum(i.file_size for i in zf.infolist() if "/weights/" in i.filename)


TARGET = CoreMLTarget()
