"""``edgepack build``: one ONNX model in, one verified bundle out.

load & normalize -> sample data -> reference outputs (onnxruntime, fp32) -> drift baseline and health-check
samples -> convert per target -> run every target in the real runtime, from the bundle's member bytes in
memory, against the reference -> write the bundle (once). Each stage's wall time, CPU time and peak RSS
go into ``manifest["build"]["stages"]`` (see ``edgepack.stages``).
"""
from __future__ import annotations

import hashlib
import io
import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from edgepack_runtime import Runtime
from edgepack_runtime.bundle import Bundle, write_bundle
from edgepack_runtime.compare import compare_output, compare_runs, summarize
from edgepack_runtime.drift import compute_baseline
from edgepack_runtime.precisions import Gate, gate, tolerance
from edgepack_runtime.signing import sign_bundle

from . import __version__
from . import targets as table
from .calibration import CalibrationSet, load_calibration
from .devices import suited_profiles
from .errors import EdgepackError, ParityError
from .model import load_model
from .model.freeze import frozen_inputs
from .model.ort import reference_outputs
from .model.qdq import is_quantized
from .plan import plan
from .stages import StageRecorder
from .targets.base import Job, QuantOptions
from .verify.floor import calibration_floor, floor_figures

N_SYNTHETIC = 40      # synthetic samples when no data is given (20% held out to verify)
SYNTHETIC_BYTES = 64 << 20   # ...fewer when their inputs would take more (the 640x640 detector: 16, not 40)
N_BUNDLED = 3         # samples shipped in the bundle for the on-device health check
FEW_HOLDOUT = 16      # fewer held-out samples than this: a calibrated precision's figures follow one or two inputs
CALIBRATED = ("int8", "int16x8", "w8a8", "w8a16")     # precisions whose build choices are judged on the hold-out
TOOLS = ("onnx", "onnxruntime", "numpy")   # plus what each built target requires


@dataclass
class BuildResult:
    path: Path | None
    manifest: dict
    warnings: list[str] = field(default_factory=list)
    signature: dict | None = None       # signature.json when built with sign_key


def default_output(model_path: Path) -> Path:
    return model_path.with_suffix(".edgepack")


def check_output(out: Path) -> None:
    """Refuse an output path that cannot be written, before any work (not after a long conversion)."""
    if out.is_dir():
        raise EdgepackError(f"output '{out}' is a directory", hint=f"give a file path, e.g. -o {out / 'model.edgepack'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise EdgepackError(f"cannot write '{out}': directory '{parent}' does not exist", hint="create it first")
    try:                                        # a real probe: permission bits say nothing to root or /proc
        tempfile.TemporaryFile(dir=parent, prefix=".edgepack-probe-").close()
    except OSError as exc:
        raise EdgepackError(f"cannot write '{out}': {exc.strerror or exc}",
                            hint="pick a writable output path with -o") from None


def build(model_path: str | Path, *, targets=(table.DEFAULT,), input_shapes: dict | None = None,
          input_values: dict | None = None, out: str | Path | None = None,
          calibration: str | Path | None = None, preprocess=None,
          holdout: float = 0.2, allow_mismatch: bool = False, thresholds: Gate | None = None,
          gate_overrides: dict | None = None, version: str = "1", num_threads: int | None = None,
          samples: list[dict] | None = None, precision: str | dict | None = None, quant: QuantOptions | None = None,
          report: str | Path | None = None, progress: Callable[[str], None] = lambda step: None,
          sign_key: str | Path | None = None, require_npu: bool = False) -> BuildResult:
    """Build a bundle for ``targets`` (target or device-profile names). Raises EdgepackError subclasses.

    Data: ``samples`` (input dicts, used for everything) if given, else ``calibration`` (an .npz, a folder
    of .npy files or of images with ``preprocess``), else synthetic samples with a loud warning. A
    ``holdout`` share is kept out of calibration; every target's accuracy gate is measured on it.
    ``precision``: one precision for every target, or per target ("cpu=int8,onnx=fp32" or a dict; see
    ``edgepack.plan``); unset targets take their device profile's preference, else their default.
    Gates: ``thresholds`` applies as is to every target; else each target's precision gate with
    ``gate_overrides`` (min_cosine, max_rel_error, min_snr_db, min_top1, cosine_over) replaced. ``quant`` tunes
    quantization (calibration method, I/O type, mixed precision). ``sign_key``: a private key file; the key
    is loaded before any work and the written bundle is signed (``edgepack_runtime.signing``).
    ``input_values`` ({name: values}, ``--input-value``) freezes inputs to constants: they leave the bundle's
    interface and are listed in ``manifest["frozen_inputs"]``. ``require_npu``: a target with an NPU
    (qualcomm) fails the build when any node would fall back to its CPU.
    """
    recorder = StageRecorder()
    with recorder:
        result = _build(recorder, model_path, targets=targets, input_shapes=input_shapes,
                        input_values=input_values, out=out,
                        calibration=calibration, preprocess=preprocess, holdout=holdout,
                        allow_mismatch=allow_mismatch, thresholds=thresholds, gate_overrides=gate_overrides,
                        version=version, num_threads=num_threads, samples=samples, precision=precision,
                        quant=quant, report=report, progress=progress, sign_key=sign_key, require_npu=require_npu)
    result.manifest["build"].update(recorder.figures())    # now with the bundle stage and the totals
    return result


def _build(recorder: StageRecorder, model_path, *, targets, input_shapes, input_values, out, calibration, preprocess,
           holdout, allow_mismatch, thresholds, gate_overrides, version, num_threads, samples, precision, quant, report,
           progress, sign_key=None, require_npu=False) -> BuildResult:
    stage = recorder.stage
    quant = quant or QuantOptions()
    model_path = Path(model_path)
    out = Path(out) if out else default_output(model_path)
    check_output(out)
    key = _load_sign_key(sign_key)
    planned = plan(list(targets), precision)
    for item in planned.items:
        item.target.check_quant(quant)
    warnings = planned.warnings()

    def preflight(m):
        for item in planned.items:
            item.target.preflight(m)

    with stage("load"):
        progress("loading and normalizing the model")
        model = load_model(model_path, input_shapes=input_shapes, input_values=input_values,
                           preflight=preflight)
        progress("checking that every op converts")
        preflight(model)

    with stage("calibration"):
        progress("loading calibration data")
        if samples is not None:
            cal = CalibrationSet(list(samples), list(samples), "given", None, [], None, 0.0, 0,
                                 holdout_is_calib=True)
        else:
            cal = load_calibration(calibration, model, preprocess=preprocess, holdout=holdout,
                                   synthetic_samples=N_SYNTHETIC, synthetic_bytes=SYNTHETIC_BYTES)
    warnings.extend(cal.warnings)
    data_kind = {"given": "given", "synthetic": "synthetic"}.get(cal.kind, "holdout")
    quantized = is_quantized(model)
    if quantized and any(_gate_for(i.precision, True, None) != gate(i.precision) for i in planned.items):
        warnings.append("the model is quantized (QDQ/QOperator): a build without exactly its rounding of "
                        "activations is judged against onnxruntime running the quantized model with a gate no "
                        "tighter than int8's")

    calibrated = sorted({i.precision for i in planned.items if i.precision in CALIBRATED})
    if calibrated and cal.kind != "synthetic" and not cal.holdout_is_calib and len(cal.holdout) < FEW_HOLDOUT:
        warnings.append(f"only {len(cal.holdout)} held-out samples judge {', '.join(calibrated)}: the accuracy gate, "
                        f"the transforms' auto choices and the mixed-precision search are decided on them, and at "
                        f"this count one or two inputs decide (PP-OCR cls int8: worst cosine 0.998 on 8 held-out "
                        f"inputs, 0.76 on 32); give at least {FEW_HOLDOUT} (more samples, or a larger --holdout)")

    with stage("reference"):
        progress(f"computing fp32 reference outputs (onnxruntime, {len(cal.all)} samples)")
        everything = cal.all
        reference_all = reference_outputs(model, everything)
        # the reference's own floor, for the calibrated precisions' gates: the same model on held-out inputs
        # moved by half an int8 step (a gate it misses there asks for more than the model's own stability)
        floor = calibration_floor(model, cal, progress) if calibrated else None
    verify_samples = cal.holdout
    ref_of = {id(s): r for s, r in zip(everything, reference_all)}     # the hold-out is a subset of all
    reference = [ref_of[id(s)] for s in verify_samples]
    del ref_of

    files: dict[str, bytes] = {}
    samples_listed = []
    with stage("baseline"):
        # The drift baseline is the only user of the calibration samples' reference outputs: compute it
        # now and let them go, so they are not held through conversion and verification.
        baseline = dict(compute_baseline(everything, reference_all), data=cal.kind)
        del everything, reference_all
        files["drift/baseline.json"] = json.dumps(baseline).encode()
        for i, (inp, outs) in enumerate(zip(verify_samples[:N_BUNDLED], reference[:N_BUNDLED])):
            files[f"samples/sample_{i:03d}.npz"] = _npz(model, inp, outs)
            samples_listed.append({"file": f"samples/sample_{i:03d}.npz"})

    entries, gates = [], {}
    for item in planned.items:
        target = item.target
        gates[target.name] = thresholds or _gate_for(item.precision, quantized, gate_overrides)
        with stage(f"convert:{target.name}"):
            progress(f"converting for target '{target.name}' ({item.precision})")
            job = Job(item.precision, cal, reference, gates[target.name], quant, tuple(item.profiles),
                      num_threads, progress, model_name=model_path.stem, model_version=version,
                      require_npu=require_npu)
            entries.append(_convert(target, model, job, files, warnings))

    tools = list(TOOLS) + [r.pip for i in planned.items for r in i.target.requires if r.pip not in TOOLS]
    manifest = _manifest(model, model_path, version, entries, planned.profiles_named, tools)
    manifest["calibration"] = cal.describe()
    if frozen_inputs(model):
        manifest["frozen_inputs"] = frozen_inputs(model)     # constants now, not part of the interface
    manifest["drift_baseline"] = "drift/baseline.json"
    manifest["samples"].extend(samples_listed)
    output_names = [o.name for o in model.graph.output]
    del model                           # its weights are not needed past conversion (0.5 GB for VGG-19)

    # Verify from the bundle's exact member bytes, held in memory, through the runtime's own reader (each
    # member read is checked against the manifest's sha256): the models verified are the bytes that ship,
    # and the bundle is written once, below, with the parity figures in its manifest.
    staged = Bundle.from_files(manifest, files)
    failures = []
    for item, entry in zip(planned.items, manifest["targets"]):
        with stage(f"verify:{entry['name']}"):
            progress(f"verifying target '{entry['name']}' in the runtime ({len(verify_samples)} samples)")
            entry["parity"] = _verify(staged, item.target, entry, output_names, verify_samples, reference,
                                      gates[entry["name"]], num_threads)
        entry["parity"]["data"] = data_kind
        if floor is not None and entry["precision"] in CALIBRATED:
            entry["parity"]["floor"] = floor_figures(floor, reference, output_names, gates[entry["name"]])
        if not entry["parity"]["passed"]:
            failures.append(entry)
    del staged
    manifest["signature"] = None
    for entry in failures:
        warnings.append(f"target '{entry['name']}' is below the accuracy gate (shipped with --allow-mismatch)")
    manifest["build"] = {"warnings": warnings, **recorder.figures()}
    if failures and not allow_mismatch:
        if report:
            _write_report(report, manifest, model_path)
        hint = "pass --allow-mismatch to ship anyway"
        if report:
            hint = f"see the layer table in {report}; " + hint
        raise ParityError(_parity_message(failures), hint=hint)
    with stage("bundle"):
        progress(f"writing {out}")
        path = write_bundle(out, manifest, files)
        signature = sign_bundle(path, key) if key is not None else None
    manifest = dict(manifest, build=dict(manifest["build"], **recorder.figures()))
    if report:
        _write_report(report, manifest, model_path)
    return BuildResult(path, manifest, warnings, signature)


def _load_sign_key(sign_key):
    """The private key of ``--sign-key``, loaded now: a wrong path or passphrase fails before any conversion."""
    if sign_key is None:
        return None
    from edgepack_runtime.signing import load_private_key
    return load_private_key(Path(sign_key))


def _judged_as(precision: str, quantized: bool) -> str:
    """The precision whose gate judges a build: a float build of a quantized model differs from its reference
    (onnxruntime running the quantized model) by the model's own quantization noise, so it gets int8's."""
    return "int8" if quantized and precision in ("fp32", "fp16") else precision


def _gate_for(precision: str, quantized: bool, overrides: dict | None) -> Gate:
    """The gate of a build at ``precision``. A quantized model's reference carries the model's own activation
    rounding, which no build without exactly that rounding reproduces (measured on Smart Turn: its float twin
    is 15.3 dB from it): a precision whose gate is tighter than int8's (fp32, fp16, Core ML's w8, w8a16...)
    is judged, field by field, no tighter than int8."""
    own = gate(_judged_as(precision, quantized))
    if quantized:
        loose = gate("int8")
        snr = None if own.min_snr_db is None or loose.min_snr_db is None else min(own.min_snr_db, loose.min_snr_db)
        own = replace(own, min_cosine=min(own.min_cosine, loose.min_cosine),
                      max_rel_error=max(own.max_rel_error, loose.max_rel_error), min_snr_db=snr,
                      cosine_over="mean" if "mean" in (own.cosine_over, loose.cosine_over) else own.cosine_over)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if changes.get("cosine_over") not in (None, "min", "mean"):
        raise EdgepackError(f"--cosine-over {changes['cosine_over']!r} is not min or mean",
                            hint="min judges the worst held-out sample, mean the average over them")
    return replace(own, **changes) if changes else own


def _write_report(report, manifest: dict, model_path: Path) -> None:
    from .report import write_report
    write_report(report, manifest, {"command": "edgepack build " + model_path.name})


def _convert(target, model: onnx.ModelProto, job: Job, files: dict[str, bytes], warnings: list[str]) -> dict:
    t0 = time.perf_counter()
    done = target.convert(model, job)
    files.update(done.files)
    warnings.extend(f"target '{target.name}': {w}" for w in done.warnings)
    info = dict(done.info, size=len(done.files[done.file]), convert_seconds=round(time.perf_counter() - t0, 4))
    return {"name": target.name, "format": target.format, "file": done.file, "precision": job.precision,
            "io": done.io, "parity": {}, "info": info, "devices": suited_profiles(target), **done.extra}


def _manifest(model, model_path: Path, version: str, entries, profiles_named, tools) -> dict:
    def io(values, perms):
        out = []
        for v in values:
            t = v.type.tensor_type
            perm = perms.get(v.name)
            layout = "NCHW" if perm == [0, 2, 3, 1] else None
            out.append({"name": v.name, "shape": [d.dim_value for d in t.shape.dim],
                        "dtype": np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name,
                        "layout": layout})
        return out

    laid_out = next((e for e in entries if any(x["perm"] for x in e["io"]["inputs"])), None)
    perms = {x["name"]: x["perm"] for x in laid_out["io"]["inputs"]} if laid_out else {}
    return {
        "model": {"name": model_path.stem, "version": version,
                  "source_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
                  "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import}},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tools": {"edgepack": __version__, **{t: _version(t) for t in dict.fromkeys(tools)}},
        "inputs": io(model.graph.input, perms),
        "outputs": io(model.graph.output, {}),
        "targets": entries, "samples": [], "profiles_requested": profiles_named, "signature": None,
    }


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "absent"


def _npz(model, inputs: dict, outputs: dict) -> bytes:
    arrays = {f"input_{i}": inputs[v.name] for i, v in enumerate(model.graph.input)}
    arrays.update({f"output_{i}": outputs[v.name] for i, v in enumerate(model.graph.output)})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _verify(staged: Bundle, target, entry: dict, output_names: list[str], samples, reference, gate_: Gate,
            num_threads) -> dict:
    with Runtime.open(staged, backend=target.backend, target=entry["name"], num_threads=num_threads) as rt:
        got = [rt.run(s) for s in samples]
        backend_name = rt.backend_name
    figures = summarize(compare_runs(got, reference, output_names), gate_)
    figures.update(backend=backend_name, samples=len(samples))
    entry["self_check"] = _self_check_tolerance(entry["precision"], got[:N_BUNDLED], reference[:N_BUNDLED])
    return figures


def _self_check_tolerance(precision: str, got, reference) -> dict:
    """The on-device self-check tolerance: the precision's default, widened to twice the deviation this
    build measured on the bundled samples (a device's kernels may round differently, never by more)."""
    base = tolerance(precision)
    rel, cos = 0.0, 1.0
    for g, r in zip(got, reference):
        for name, ref in r.items():
            if np.asarray(ref).dtype.kind != "f":
                continue
            f = compare_output([g[name]], [ref])
            rel, cos = max(rel, f["rel_error"]), min(cos, f["cosine"])
    return {"rtol": max(base["rtol"], 2 * rel), "atol": base["atol"],
            "min_cosine": min(base["min_cosine"], 1 - 2 * (1 - cos)), "measured": {"max_rel": rel, "cosine": cos}}


def _matmul_heavy(entry) -> bool:
    """Whether a cpu target's weighted ops are mostly FULLY_CONNECTED (a transformer encoder, an MLP head),
    where the dynamically quantized kernels XNNPACK delegates beat static int8 on accuracy at its speed."""
    hist = (entry.get("info") or {}).get("op_histogram") or {}
    fc = hist.get("FULLY_CONNECTED", 0)
    conv = sum(hist.get(k, 0) for k in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"))
    return entry.get("format") == "tflite" and fc > 0 and fc >= 2 * conv


def _floor_note(p: dict) -> str:
    """The sentence a missed gate gets when the reference misses it too with its inputs moved by half an
    int8 step; empty otherwise."""
    f = p.get("floor")
    if not f or f.get("passed", True):
        return ""
    missed = "; ".join(", ".join(why) for why in f.get("failed", {}).values())
    return (f"; the fp32 model itself misses this gate when its inputs move by half an int8 step ({missed}): "
            f"on these samples the gate asks for more than the model's own stability (an int8 model rounds that "
            f"input and every tensor after it). Judge with a gate the reference meets (--cosine-over mean, a "
            f"lower --min-cosine, a larger --max-rel-error), or calibrate and judge with samples nearer the "
            f"model's use")


def _parity_message(failures) -> str:
    parts = []
    for e in failures:
        p = e["parity"]
        missed = "; ".join(f"{out}: {', '.join(why)}" for out, why in p.get("failed", {}).items())
        part = (f"target '{e['name']}' ({e['precision']}) misses the accuracy gate on {p.get('samples')} "
                f"{p.get('data')} samples: {missed or 'see parity figures'} (min cosine {p['min_cosine']:.6f}, "
                f"max relative error {p['max_rel_error']:.3g})")
        q = e.get("quantization")
        if q:
            kept = [f["origin"] or f["tensor"] for f in q.get("float_layers", [])]
            by_tensor = {r["tensor"]: r for r in q.get("layers", [])}
            worst = [by_tensor[t]["origin"] or t for t in q.get("culprits", [])[:5] if t in by_tensor]
            part += (f"; most sensitive layers: {', '.join(worst) or 'none'}; kept in float: "
                     f"{', '.join(kept) or 'none'} (run `edgepack debug-quant` for the table, try --keep-float "
                     f"or a larger --max-float, or --method percentile)")
            if e["precision"] == "int8" and _matmul_heavy(e):
                part += ("; most of its weighted ops are fully-connected: --precision int8-dynamic keeps int8 "
                         "weights and int8 matrix kernels, rounding each activation row at run time (MiniLM: "
                         "cosine 0.9995 where static int8 reached 0.95, at the same latency)")
        part += _floor_note(p)
        parts.append(part)
    return "converted model does not match the ONNX reference: " + " | ".join(parts)
