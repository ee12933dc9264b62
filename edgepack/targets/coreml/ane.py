"""Static Apple Neural Engine compatibility report: a table of rules over the converted MIL program and
the fp32 activation statistics of the calibration samples.

Each rule has an id, a severity and a test returning the places it applies to:

    off-ane     the whole model leaves the Neural Engine (Core ML runs it on GPU/CPU)
    fallback    the named ops run outside the Neural Engine; the graph is split around them
    risk        runs on the Neural Engine, but fp16 arithmetic may lose the signal there

The op tables are heuristics gathered from public reports (coremltools documentation, Apple's
ml-ane-transformers notes, community measurements); Core ML decides placement at load time, and only
a compute plan on a Mac tells for sure. Rules are data: adding one is a row in ``RULES``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx

from .convert import source_name

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 6.103515625e-05
MAX_RANK = 5
MAX_DIM = 16384          # a tensor axis longer than this is not laid out on the Neural Engine
UNDERFLOW_SHARE = 0.01   # flag a tensor when more than this share of its nonzero values sit below fp16 normals
RELATIVE_EPS = 2.0 ** -11  # values below max|x| * this are lost to fp16 rounding anyway: not counted as signal

# MIL ops that Core ML places outside the Neural Engine (the graph splits around them)
FALLBACK_OPS = {
    "topk": "sorting", "argsort": "sorting", "reduce_argmax": "integer index output",
    "reduce_argmin": "integer index output", "gather": "indexed reads", "gather_along_axis": "indexed reads",
    "gather_nd": "indexed reads", "scatter": "indexed writes", "scatter_along_axis": "indexed writes",
    "scatter_nd": "indexed writes", "non_maximum_suppression": "data-dependent output", "non_zero":
    "data-dependent output", "cumsum": "sequential scan", "while_loop": "control flow", "cond": "control flow",
    "random_uniform": "random numbers", "random_normal": "random numbers", "random_bernoulli": "random numbers",
    "band_part": "masking by index", "floor_div": "integer arithmetic", "mod": "integer arithmetic",
}
# ops that only move data between dtypes or name values; they never decide placement by themselves
NEUTRAL = {"const", "cast", "identity", "quantize", "dequantize"}   # the last two: W8A8's int8 activation pairs
NON_FLOAT = {"int32", "int16", "int8", "uint8", "uint16", "bool"}


@dataclass
class Facts:
    program: object                      # coremltools MIL Program (as loaded back from the package)
    compute_precision: str               # "fp16" | "fp32"
    stats: dict                          # tensor -> {"max_abs", "underflow_share"} (fp32, calibration)
    flexible: tuple = ()                 # inputs the package declares with range or enumerated shapes


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    what: str
    test: Callable[[Facts], list[str]]


def _ops(facts):
    return [op for op in facts.program.functions["main"].operations if op.op_type not in NEUTRAL]


def _name(op) -> str:
    return source_name(op.name)


def _shape(var):
    return tuple(getattr(var, "shape", ()) or ())


def _dtype(var) -> str:
    from coremltools.converters.mil.mil import types
    try:
        return types.builtin_to_string(var.dtype)
    except Exception:
        return "?"


def _dynamic_inputs(facts):
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic
    fn = facts.program.functions["main"]
    symbolic = [n for n, v in fn.inputs.items() if any(is_symbolic(d) or d is None for d in _shape(v))]
    return symbolic + [n for n in facts.flexible if n not in symbolic]


RULES: tuple[Rule, ...] = (
    Rule("dynamic-shape", "off-ane", "inputs with dynamic or range shapes",
         _dynamic_inputs),
    Rule("fp32-compute", "off-ane", "fp32 compute precision (the Neural Engine computes in fp16 only)",
         lambda f: ["model"] if f.compute_precision == "fp32" else []),
    Rule("rank>5", "fallback", f"tensors of rank above {MAX_RANK}",
         lambda f: [_name(op) for op in _ops(f) if any(len(_shape(o)) > MAX_RANK for o in op.outputs)]),
    Rule("large-axis", "fallback", f"tensor axes longer than {MAX_DIM}",
         lambda f: [_name(op) for op in _ops(f)
                    if any(isinstance(d, int) and d > MAX_DIM for o in op.outputs for d in _shape(o))]),
    Rule("fallback-op", "fallback", "ops the Neural Engine does not run ("
         + ", ".join(sorted(set(FALLBACK_OPS.values()))) + ")",
         lambda f: [f"{_name(op)} ({op.op_type}: {FALLBACK_OPS[op.op_type]})" for op in _ops(f)
                    if op.op_type in FALLBACK_OPS]),
    Rule("integer-tensors", "fallback", "arithmetic on integer or boolean tensors",
         lambda f: [f"{_name(op)} ({op.op_type})" for op in _ops(f) if op.op_type not in FALLBACK_OPS
                    and any(_dtype(o) in NON_FLOAT for o in op.outputs)]),
    Rule("fp16-overflow", "risk", f"activations beyond the fp16 range (|x| > {FP16_MAX:g}) on calibration data",
         lambda f: [f"{t} (max |x| {s['max_abs']:.4g})" for t, s in f.stats.items() if s["max_abs"] > FP16_MAX]),
    Rule("fp16-underflow", "risk", f"activations carrying signal below fp16's normal range "
         f"(> {UNDERFLOW_SHARE:.0%} of nonzero |x| < {FP16_MIN_NORMAL:.3g})",
         lambda f: [f"{t} ({s['underflow_share']:.1%} below, max |x| {s['max_abs']:.3g})"
                    for t, s in f.stats.items() if s["underflow_share"] > UNDERFLOW_SHARE]),
)
SHOWN = 10   # places listed per finding (the count says how many there are)


def activation_stats(model: onnx.ModelProto, samples: list[dict], limit: int = 8) -> dict:
    """Per float tensor: max |x| and the share of nonzero values that carry signal (above the tensor's max
    times fp16's relative precision) yet sit below fp16's smallest normal, over the first ``limit`` samples, from onnxruntime on the fp32 model (every tensor made a graph output)."""
    from ...model.ort import run_model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    for vi in model.graph.value_info:
        if vi.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) \
                and vi.name not in known:
            probe.graph.output.append(vi)
    names = [o.name for o in probe.graph.output if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    out: dict[str, dict] = {}
    counts: dict[str, list[int]] = {}
    for sample in samples[:limit]:
        for name, value in zip(names, run_model(probe, sample, names)):
            a = np.abs(np.asarray(value, np.float32))
            nz = a[a > 0]
            s = out.setdefault(name, {"max_abs": 0.0, "underflow_share": 0.0})
            c = counts.setdefault(name, [0, 0])
            s["max_abs"] = max(s["max_abs"], float(a.max()) if a.size else 0.0)
            floor = (float(a.max()) if a.size else 0.0) * RELATIVE_EPS
            c[0] += int(((nz < FP16_MIN_NORMAL) & (nz > floor)).sum())
            c[1] += int(nz.size)
    for name, (small, total) in counts.items():
        out[name]["underflow_share"] = small / total if total else 0.0
    return out


def flexible_inputs(spec) -> tuple:
    """Inputs a Core ML spec declares with a shape range or enumerated shapes."""
    out = []
    for i in spec.description.input:
        t = i.type.multiArrayType
        if i.type.WhichOneof("Type") == "multiArrayType" and t.WhichOneof("ShapeFlexibility"):
            out.append(i.name)
    return tuple(out)


def report(program, compute_precision: str, stats: dict, samples: int = 0, flexible: tuple = ()) -> dict:
    """The manifest's ``ane`` entry: a verdict, one finding per rule that applies, and what was checked."""
    facts = Facts(program, compute_precision, stats, flexible)
    findings = []
    for rule in RULES:
        where = rule.test(facts)
        if where:
            findings.append({"rule": rule.id, "severity": rule.severity, "what": rule.what,
                             "count": len(where), "where": where[:SHOWN]})
    severities = {f["severity"] for f in findings}
    verdict = ("off-ane" if "off-ane" in severities else "partial" if "fallback" in severities
               else "ane-risk" if "risk" in severities else "ane-likely")
    peak = max((s["max_abs"] for s in stats.values()), default=0.0)
    return {"verdict": verdict, "findings": findings, "rules": [r.id for r in RULES],
            "statistics": {"samples": samples, "tensors": len(stats), "max_abs": peak,
                           "fp16_headroom": round(FP16_MAX / peak, 3) if peak else None}}
