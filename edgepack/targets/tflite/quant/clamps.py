"""After the full-integer pass: clamps that int8 saturation already performs, and constants XNNPACK refuses.

In int8 a clamp to [lo, hi] whose output parameters cannot represent anything outside [lo, hi] is just a
requantization: QUANTIZE int8 -> int8 saturates to [-128, 127], which is the clamp. LiteRT's XNNPACK
delegate takes QUANTIZE but not int8 RELU / RELU6 / RELU_N1_TO_1 / MAXIMUM / MINIMUM (they ran on TFLite's
reference kernels and split the delegated graph; an int8 RELU on 100k values cost 3.6 ms against 0.1 ms in
fp32, ``bench_int8_ops.py``), and RELU_0_TO_1 (hard-sigmoid's clamp) has no int8 kernel at all, so it ran
in float between a DEQUANTIZE and a QUANTIZE. Rewrites:

* DEQUANTIZE -> float clamp -> QUANTIZE(s)  =>  one requantizing QUANTIZE per consumer parameters;
* int8 clamp                                =>  QUANTIZE (or nothing when input and output share parameters;
                                                two QUANTIZE ops when the output's parameters reach beyond
                                                the clamp, as a concatenation's shared ones do);
* int8 MAXIMUM(x, c) / MINIMUM(x, c) whose constant sits at the saturation end (-128 / 127) => the same;
* ADD / SUB with a constant quantized far finer than the output (a tiny bias: XNNPACK refuses input/output
  scale ratios below 2^-10) get the constant re-encoded at ``output scale / 256`` or coarser, or are
  dropped when the constant rounds to zero at the output's step.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from .full_integer import qparams

CLAMPS = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0), "RELU_0_TO_1": (0.0, 1.0)}
# int8 ops XNNPACK does not take but takes in float (bench_int8_ops.py): run as DQ -> float op -> Q
FLOAT_IN_INT8 = {"AVERAGE_POOL_2D", "HARD_SWISH"}
MIN_CONST_RATIO = 2.0 ** -8      # constant scale / output scale kept at or above this (XNNPACK: 2^-10)


def _per_tensor(graph: Graph, name: str) -> tuple[float, int] | None:
    t = graph.tensors[name]
    q = t.quant
    if t.dtype != np.int8 or q is None or len(q.scale) != 1:
        return None
    return float(np.float32(q.scale[0])), int(q.zeroPoint[0])


def _within(q: tuple[float, int], lo: float, hi: float) -> bool:
    """Whether parameters ``q`` represent nothing outside [lo, hi] (one step of slack)."""
    s, zp = q
    return (-128 - zp) * s >= lo - s and (127 - zp) * s <= hi + s


def _requantize(graph: Graph, op: Op, src: str) -> str:
    """Make ``op`` a QUANTIZE from ``src`` to its output; or drop it when the parameters are equal."""
    out = op.outputs[0]
    if _per_tensor(graph, src) == _per_tensor(graph, out) and out not in graph.outputs:
        graph.replace_uses(out, src)
        graph.ops.remove(op)
        return "dropped"
    op.opcode, op.inputs, op.options = "QUANTIZE", [src], None
    return "requantize"


def _two_step(graph: Graph, op: Op) -> bool:
    """An int8 clamp whose output parameters reach beyond the clamp (it feeds a concatenation that shares
    them): QUANTIZE into parameters inside the clamp (the saturation clamps), then QUANTIZE to the output's."""
    x, out = op.inputs[0], op.outputs[0]
    q_out = _per_tensor(graph, out)
    if _per_tensor(graph, x) is None or q_out is None:
        return False
    from .full_integer import asymmetric
    lo, hi = CLAMPS[op.opcode]
    s, zp = q_out
    inner = asymmetric(max(lo, (-128 - zp) * s), min(hi, (127 - zp) * s))
    if not _within(inner, lo, hi):
        return False
    mid = graph.add(f"{out}_clamped", graph.tensors[out].shape, np.int8)
    graph.tensors[mid].quant = qparams(np.float32(inner[0]), inner[1])
    op.opcode, op.inputs, op.outputs, op.options = "QUANTIZE", [x], [mid], None
    graph.ops.insert(graph.ops.index(op) + 1, Op("QUANTIZE", [mid], [out], None, op.origin))
    return True


def _float_island(graph: Graph, op: Op, prod, users) -> bool:
    """DEQUANTIZE -> clamp (float) -> QUANTIZE(s): each QUANTIZE reads the int8 source directly. A clamp
    read in float (a graph output) becomes QUANTIZE into parameters inside the clamp, then DEQUANTIZE."""
    dq = prod.get(op.inputs[0])
    outs = users.get(op.outputs[0], [])
    if dq is None or dq.opcode != "DEQUANTIZE" or _per_tensor(graph, dq.inputs[0]) is None:
        return False
    lo, hi = CLAMPS[op.opcode]
    if outs and op.outputs[0] not in graph.outputs and all(
            u.opcode == "QUANTIZE" and _per_tensor(graph, u.outputs[0]) is not None
            and _within(_per_tensor(graph, u.outputs[0]), lo, hi) for u in outs):
        for u in outs:
            u.inputs = [dq.inputs[0]]
        graph.ops.remove(op)
        return True
    from .full_integer import asymmetric
    s, zp = _per_tensor(graph, dq.inputs[0])
    inner = asymmetric(max(lo, (-128 - zp) * s), min(hi, (127 - zp) * s))
    if not _within(inner, lo, hi):
        return False
    mid = graph.add(f"{op.outputs[0]}_clamped", graph.tensors[op.outputs[0]].shape, np.int8)
    graph.tensors[mid].quant = qparams(np.float32(inner[0]), inner[1])
    graph.ops.insert(graph.ops.index(op), Op("QUANTIZE", [dq.inputs[0]], [mid], None, op.origin))
    op.opcode, op.inputs, op.options = "DEQUANTIZE", [mid], None
    return True


def _saturating(graph: Graph, op: Op) -> str | None:
    """The int8 operand of an int8 clamp-like op that saturation alone implements, else None."""
    out = _per_tensor(graph, op.outputs[0])
    if out is None:
        return None
    if op.opcode in CLAMPS:
        x = op.inputs[0]
        return x if _per_tensor(graph, x) is not None and _within(out, *CLAMPS[op.opcode]) else None
    if op.opcode in ("MAXIMUM", "MINIMUM") and len(op.inputs) == 2:
        consts = [n for n in op.inputs if graph.tensors[n].data is not None]
        acts = [n for n in op.inputs if graph.tensors[n].data is None]
        if len(consts) != 1 or len(acts) != 1 or _per_tensor(graph, acts[0]) is None:
            return None
        c = graph.tensors[consts[0]]
        end = -128 if op.opcode == "MAXIMUM" else 127
        if _per_tensor(graph, consts[0]) == out and np.all(c.data == end):
            return acts[0]
    return None


def _small_constant(graph: Graph, op: Op) -> str | None:
    """ADD/SUB with a too finely quantized constant: re-encode it; return 'dropped' / 'rescaled' / None."""
    out = _per_tensor(graph, op.outputs[0])
    consts = [i for i, n in enumerate(op.inputs) if n is not None and graph.tensors[n].data is not None]
    if out is None or len(consts) != 1 or len(op.inputs) != 2:
        return None
    k = consts[0]
    cq = _per_tensor(graph, op.inputs[k])
    x = op.inputs[1 - k]
    if cq is None or cq[0] >= out[0] * MIN_CONST_RATIO or _per_tensor(graph, x) is None:
        return None
    c = graph.tensors[op.inputs[k]]
    value = (c.data.astype(np.float64) - cq[1]) * cq[0]
    if np.all(np.abs(value) < 0.5 * out[0]) and getattr(op.options, "fusedActivationFunction", 0) == 0 \
            and (op.opcode == "ADD" or k == 1):
        return "dropped" if _requantize(graph, op, x) == "dropped" else "requantize"
    scale = max(float(np.abs(value).max()) / 127.0, out[0] * MIN_CONST_RATIO)
    new = graph.add(f"{c.name}_rescaled", c.shape, np.int8, np.clip(np.round(value / scale), -127, 127).astype(np.int8))
    graph.tensors[new].quant = qparams(np.float32(scale), 0)
    op.inputs[k] = new
    return "rescaled"


def _to_float(graph: Graph, op: Op) -> bool:
    """Run an int8 op that XNNPACK takes only in float as DEQUANTIZE -> float op -> QUANTIZE (all three
    delegated: one partition, and float pooling beats TFLite's int8 reference kernel)."""
    x, out = op.inputs[0], op.outputs[0]
    if _per_tensor(graph, x) is None or _per_tensor(graph, out) is None:
        return False
    xf = graph.add(f"{x}_f", graph.tensors[x].shape, np.float32)
    of = graph.add(f"{out}_f", graph.tensors[out].shape, np.float32)
    at = graph.ops.index(op)
    graph.ops.insert(at, Op("DEQUANTIZE", [x], [xf], None, op.origin))
    graph.ops.insert(at + 2, Op("QUANTIZE", [of], [out], None, op.origin))
    op.inputs[0], op.outputs[0] = xf, of
    return True


def simplify(graph: Graph) -> dict:
    """Apply the rewrites of the module docstring to a quantized IR; return counts per rewrite."""
    counts = {"float_clamps": 0, "int8_clamps": 0, "small_constants": 0, "float_islands": 0}
    prod, users = graph.producers(), graph.consumers()
    for op in list(graph.ops):
        if op.opcode in CLAMPS and graph.tensors[op.outputs[0]].dtype == np.float32:
            if _float_island(graph, op, prod, users):
                counts["float_clamps"] += 1
                prod, users = graph.producers(), graph.consumers()
            continue
        src = _saturating(graph, op)
        if src is not None and not getattr(op.options, "fusedActivationFunction", 0):
            _requantize(graph, op, src)
            counts["int8_clamps"] += 1
        elif op.opcode in CLAMPS and _two_step(graph, op):
            counts["int8_clamps"] += 1
        elif op.opcode in ("ADD", "SUB") and _small_constant(graph, op):
            counts["small_constants"] += 1
        elif op.opcode in FLOAT_IN_INT8 and _to_float(graph, op):
            counts["float_islands"] += 1
        else:
            continue
        prod, users = graph.producers(), graph.consumers()
    graph.prune()
    graph.toposort()
    return counts
