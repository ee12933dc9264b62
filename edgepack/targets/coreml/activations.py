"""W8A8 for Core ML (``--precision coreml=w8a8``): int8 weights per channel and int8 activations, for the
Neural Engine's int8 compute on A17 Pro / M4 class chips (iOS17 / macOS14 and newer).

coremltools' ``linear_quantize_activations`` calibrates by running the model with Core ML, which needs macOS.
Here the ranges come from the numpy MIL reference executor (``edgepack_runtime.backends.coreml_ref``) run on
the calibration samples, and coremltools' own passes place the ``quantize`` / ``dequantize`` pairs with them
(``insert_prefix_quantize_dequantize_pair``, ``insert_suffix_quantize_dequantize_pair`` and the elimination of
back-to-back pairs): activations entering conv, linear, add and pooling ops, symmetric int8 per tensor over
the observed min / max (the mode coremltools documents for W8A8). Weights are int8 first (the ``w8`` mode), so
the ranges are those of the model that runs. Ops with an input reaching +-1e4 (masks, near-overflow values)
keep fp16 activations (``wide_inputs``).

When the gate misses, mixed precision (``edgepack.mixed``) leaves the activations of the ops that cost the
most in fp16: each quantized op is measured alone (its activations int8, every other op's fp16, on a few
held-out samples; ``isolated_rows``), the ops are ranked by the output SNR that leaves, and the shared search
picks the set, each candidate built by the same passes with those ops configured off and measured by the
executor on the held-out samples.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...errors import ConversionError
from ...mixed import Trial, search
from ...verify.layers import rank
from .convert import discard, load_program, source_name, zip_package

MODE = "linear_symmetric"
QUANTIZED_OPS = ("conv", "linear", "add", "avg_pool", "max_pool")   # coremltools' activation-quantized ops
DEBUG_SAMPLES = 8
MIN_LEVEL = 17          # quantize / dequantize are iOS17 ops
WIDE = 1e4              # an activation input reaching this magnitude stays fp16 (``wide_inputs``)


def _program(data: bytes):
    from edgepack_runtime.backends.coreml_ref.program import load
    return load(data)


def _feeds(program, model, sample: dict) -> dict:
    """ONNX-named sample -> the program's input names (the package keeps the ONNX inputs' order)."""
    return {name: np.asarray(sample[v.name]) for name, v in zip(program.input_names, model.graph.input)}


def ranges(data: bytes, model, samples: list[dict]) -> dict[str, dict]:
    """{MIL value name: {"rmin", "rmax"}} of every float value of the zipped package ``data`` over ``samples``,
    traced by the reference executor (the statistics coremltools' passes read)."""
    program = _program(data)
    out: dict[str, dict] = {}
    for sample in samples:
        for name, value in program.run(_feeds(program, model, sample), keep_all=True).items():
            v = np.asarray(value)
            if v.dtype.kind != "f" or v.size == 0:
                continue
            v = v[np.isfinite(v)]
            if v.size == 0:
                continue
            lo, hi = float(v.min()), float(v.max())
            s = out.setdefault(name, {"rmin": lo, "rmax": hi})
            s["rmin"], s["rmax"] = min(s["rmin"], lo), max(s["rmax"], hi)
    return out


def quantize_activations(mlmodel, stats: dict, skip=()):
    """A new MLModel with int8 activations placed by coremltools' passes (``skip``: op names left fp16)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils
    from coremltools.optimize import coreml as cto
    skip = list(skip) + integer_ops(mlmodel._mil_program)
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode=MODE),
                                    op_name_configs={name: None for name in skip} or None)
    passes = []
    for name in ("compression::insert_prefix_quantize_dequantize_pair",
                 "compression::insert_suffix_quantize_dequantize_pair"):
        p = PASS_REGISTRY[name]
        p.set_options([PassOption("config", config)])
        p.set_options([PassOption("activation_stats", stats)])
        passes.append(p)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return model_utils._apply_graph_pass(mlmodel, passes, spec_version=ct.target.iOS17,
                                                 pymil_load_func=milproto_load.load, skip_model_load=True)
        except Exception as exc:        # the passes' own errors (a value without statistics...)
            raise ConversionError(f"coremltools could not place the int8 activations: {type(exc).__name__}: "
                                  f"{exc}", hint="build at --precision coreml=w8 (int8 weights, fp16 "
                                                 "activations)") from exc


def integer_ops(program) -> list[str]:
    """Ops of the quantized kinds with a non-float activation input (MiniLM's int32 index ``add``): the passes
    would look up float statistics for them, and there is nothing to quantize."""
    from coremltools.converters.mil.mil import types
    out = []
    for op in program.functions["main"].operations:
        if op.op_type in QUANTIZED_OPS and any(
                v is not None and not types.is_float(getattr(v, "dtype", None) or types.fp32)
                for k, v in op.inputs.items() if k in ("x", "y")):
            out.append(op.name)
    return out


def wide_inputs(program, stats: dict, limit: float | None = None) -> list[str]:
    """Ops of the quantized kinds with a float activation input whose calibrated range reaches ``limit``.

    Symmetric int8 over +-65504 has a step of 516: such a value is an additive attention mask (BERT exports'
    ``(1 - mask) * finfo.min``, clamped to fp16's range) or an intermediate that nearly overflows fp16 (magika's
    cubed GELU argument), and its int8 twin is a different value (every attention score but the mask's rounds
    to one number; magika reads 0.05 cosine with them int8, 0.71 without). The cpu target keeps additive masks
    float for the same reason (``policy.additive_masks``)."""
    limit = WIDE if limit is None else limit
    out = []
    for op in program.functions["main"].operations:
        if op.op_type not in QUANTIZED_OPS:
            continue
        for key in ("x", "y"):
            v = op.inputs.get(key)
            s = stats.get(v.name) if v is not None else None
            if s and max(abs(s["rmin"]), abs(s["rmax"])) >= limit:
                out.append(op.name)
                break
    return out


def quantized(program) -> list[str]:
    """Names of the ops whose activation input arrives through a ``dequantize`` (the ones running int8)."""
    producer = {o.name: op for op in program.functions["main"].operations for o in op.outputs}
    out = []
    for op in program.functions["main"].operations:
        x = op.inputs.get("x") if op.op_type in QUANTIZED_OPS else None
        if x is not None and producer.get(x.name) is not None and producer[x.name].op_type == "dequantize":
            out.append(op.name)
    return out


def layer_rows(float_data: bytes, quant_data: bytes, prog, stats: dict, model, samples: list[dict],
               ops: list[str]) -> list[dict]:
    """One row per quantized op: its output's SNR against the same value of the fp16-activation program and the
    dB it loses over its input's (``edgepack.verify.layers.rank`` orders them). ``prog``: ``quant_data``'s
    parsed MIL program; ``stats``: the calibrated ranges (``gains``)."""
    from edgepack_runtime.compare import snr_db
    by_name = {op.name: op for op in prog.functions["main"].operations}
    producer = {o.name: op for op in prog.functions["main"].operations for o in op.outputs}
    fa, qa = _program(float_data), _program(quant_data)
    factor = gains(prog, stats)
    traces = [(fa.run(_feeds(fa, model, s), keep_all=True), qa.run(_feeds(qa, model, s), keep_all=True))
              for s in samples]

    def snr(name: str) -> float:
        pairs = [(f[name], q[name]) for f, q in traces if name in f and name in q]
        if not pairs:
            return 100.0
        g = factor.get(name, 1.0)
        return snr_db(np.concatenate([np.ravel(np.asarray(q, np.float64)) * g for _, q in pairs]),
                      np.concatenate([np.ravel(np.asarray(f, np.float64)) for f, _ in pairs]))

    rows = []
    for name in ops:
        op = by_name[name]
        deq = producer[op.inputs["x"].name]
        source = producer.get(deq.inputs["input"].name)
        before = source.inputs["input"].name if source is not None and source.op_type == "quantize" else None
        out_snr = snr(op.outputs[0].name)
        in_snr = snr(before) if before else 100.0
        rows.append({"tensor": name, "op": op.op_type, "origin": name, "int8": True, "snr_db": out_snr,
                     "added_db": max(0.0, in_snr - out_snr)})
    return rows


def gains(program, stats: dict) -> dict[str, float]:
    """{value name: factor} from values of a w8a8 program to the same values of its float twin, for the values
    whose factor is not 1 (look others up with ``.get(name, 1.0)``).

    coremltools' pipeline (``distributive_quantized_binary_op_scale_normalization``) gives the ``y``
    dequantize of a quantized ``add`` scale 1 and divides the ``x`` dequantize's and the output quantize's
    scales by the old ``s_y``: the integers are unchanged, and the add's float result is ``1 / s_y`` of the
    model's. A value read by a quantize is in the model's units when that quantize's scale is the one its
    calibrated range gives (``max |r| / 127``); otherwise the ratio is the factor. Compared raw, every
    rescaled add read tens of dB off and ranked first for fp16 (MiniLM: -48 dB for an add losing 0.1 dB)."""
    out: dict[str, float] = {}
    for op in program.functions["main"].operations:
        name = op.inputs["input"].name if op.op_type == "quantize" else None
        r = stats.get(name) if name is not None else None
        if not r or name in out:
            continue
        own = max(abs(r["rmin"]), abs(r["rmax"])) / 127.0
        ratio = float(own / np.median(np.asarray(op.inputs["scale"].val, np.float64)))
        out[name] = 1.0 if own == 0 or abs(ratio - 1.0) < 0.02 else ratio
    return {k: v for k, v in out.items() if v != 1.0}


ISOLATE_SAMPLES = 4      # held-out samples per op in ``isolated_rows``
ISOLATE_MAX = 128        # more quantized ops than this: rank by ``layer_rows`` (one trace) instead


def isolated_rows(trial, ops: list[str], progress) -> list[dict]:
    """One row per quantized op: the model output's SNR with only that op's activations int8 (every other
    fp16), on ``ISOLATE_SAMPLES`` held-out samples; ``rank`` puts the lowest first.

    What an op's int8 input costs at the output, not where its error shows: ``layer_rows`` measures each
    value against its twin in the all-int8 program, where errors from upstream pile up (MiniLM's later values
    read 2-4 dB whatever they do) and an op that loses little locally can be the one the output cannot take
    (a residual add or the FFN's down projection reading a GELU with outliers). Measured on the families
    (RESULTS, session 14): PP-OCR cls 2 fp16 ops instead of 20 (held-out worst cosine 0.84 -> 0.96), MiniLM
    0.979 -> 0.985. Costs one build and ``ISOLATE_SAMPLES`` executor runs per op."""
    rows = []
    for i, name in enumerate(ops):
        progress(f"ranking the int8 activations: {i + 1} of {len(ops)} alone")
        _, fig = trial.run([o for o in ops if o != name], ISOLATE_SAMPLES, record=False)
        snr = min(o.get("snr_db", 100.0) for o in fig["outputs"].values())
        rows.append({"tensor": name, "op": "", "origin": name, "int8": True, "snr_db": snr,
                     "added_db": max(0.0, 100.0 - snr)})
    return rows


def calibrated(mlmodel, model, calib: list[dict], progress=lambda s: None):
    """(the w8 MLModel, its zipped package, the executor's ranges over ``calib`` on it, the ``wide_inputs``
    ops): what a w8a8 program is placed from, in the build and in ``debug-quant``."""
    from . import compress
    progress("int8 weights (w8)")
    weights = compress.compress(mlmodel, "w8")
    w8_data = zip_package(weights)
    progress(f"int8 activation ranges: the reference executor on {len(calib)} calibration samples")
    stats = ranges(w8_data, model, calib)
    return weights, w8_data, stats, wide_inputs(weights._mil_program, stats)


def w8a8(mlmodel, model, job, evaluate) -> tuple[object, dict]:
    """(the W8A8 MLModel, the manifest's ``activations`` record). ``mlmodel``: the fp16 program's MLModel;
    ``evaluate(data, n)``: gate figures of a zipped package on the first ``n`` held-out samples (all when
    None)."""
    calib = list(job.calibration.calib or job.calibration.all)
    weights, w8_data, stats, wide = calibrated(mlmodel, model, calib, job.progress)

    def make(keep):
        m = quantize_activations(weights, stats, wide + list(keep))
        try:
            return zip_package(m)
        finally:
            discard(m)

    trial = Trial(make, evaluate, len)
    job.progress(f"measuring w8a8 on {len(job.calibration.holdout)} held-out samples")
    data, figures = trial.run([])
    _, prog = load_program(data)
    ops = quantized(prog)
    keep: list[str] = []
    if not figures["passed"] and job.quant.mixed_precision and job.calibration.holdout and ops:
        if len(ops) <= ISOLATE_MAX:
            rows = isolated_rows(trial, ops, job.progress)
        else:
            job.progress("ranking the int8 activations against their fp16 twins")
            rows = layer_rows(w8_data, data, prog, stats, model, job.calibration.holdout[:DEBUG_SAMPLES], ops)
        keep, data, figures = search(trial, [], [], rank(rows), job.quant.max_float_fraction, data, figures,
                                     job.progress)
    final = quantize_activations(weights, stats, wide + keep)
    discard(weights)
    record = {"mode": MODE, "calibration_samples": len(calib), "quantized_ops": len(ops) - len(keep),
              "fp16_activations": [source_name(n) for n in keep],
              "wide_inputs": [source_name(n) for n in wide], "passed": figures["passed"],
              "mixed_precision": {"enabled": job.quant.mixed_precision, "tried": trial.tried}}
    return final, record

