"""Which layers the cpu target keeps in float in int8: the ``--int8-policy`` rules and ``--keep-float``.

Keeping a layer float keeps its output tensor float, so its consumers read float too.
"""
from __future__ import annotations

import numpy as np
import onnx

from ....errors import EdgepackError


def resolve_keep(names, lowered) -> list[str]:
    """User ``keep_float`` entries may name tensors or ONNX nodes (all outputs of the ops they became)."""
    by_origin: dict[str, list[str]] = {}
    for op in lowered.graph.ops:
        by_origin.setdefault(op.origin, []).extend(op.outputs)
    out = []
    for n in names:
        if n in lowered.graph.tensors:
            out.append(n)
        elif n in by_origin:
            out.extend(t for t in by_origin[n] if lowered.graph.tensors[t].dtype == np.float32)
        else:
            raise EdgepackError(f"--keep-float '{n}' is neither a tensor nor a node of the model",
                                hint="use a node name from `edgepack debug-quant` output")
    return out


POLICIES = ("cpu", "strict")


def policy_float_nodes(model: onnx.ModelProto, policy: str) -> list[str]:
    """ONNX nodes the int8 ``policy`` keeps in float.

    ``cpu`` (LiteRT with XNNPACK): normalization statistics, Softmax, and MatMul of two activations
    (attention). XNNPACK has no int8 kernels for those, so in int8 they fall back to slow reference kernels
    and split the delegated graph (measured on the fitted transformer: 2.4x slower than fp32 all-int8,
    0.91x with these float); and a variance computed in int8 (often E[x^2] - E[x]^2) loses most of its
    bits. Normalization statistics are LayerNormalization nodes and, in decomposed form, every node on a
    path of at most ``STATS_DEPTH`` nodes from a ReduceMean/ReduceSum to a Sqrt, the squaring feeding
    that reduction, and the Reciprocal/Div after the Sqrt. And additive attention masks
    (``additive_masks``). ``strict``: every op that has an int8 kernel is quantized (integer-only
    accelerators)."""
    if policy not in POLICIES:
        raise EdgepackError(f"int8 policy '{policy}' is not one of {', '.join(POLICIES)}")
    if policy == "strict":
        return []
    consts = {i.name for i in model.graph.initializer}
    out = set()
    for node in model.graph.node:
        if node.op_type in ("LayerNormalization", "Softmax"):
            out.add(node.name)
        elif node.op_type == "MatMul" and not any(i in consts for i in node.input):
            out.add(node.name)
    out.update(_normalization_statistics(model))
    out.update(additive_masks(model))
    return [n.name for n in model.graph.node if n.name in out]


STATS_DEPTH = 8


def _normalization_statistics(model: onnx.ModelProto) -> set[str]:
    producer = {o: n for n in model.graph.node for o in n.output}
    users: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    found: set[str] = set()
    for sqrt in (n for n in model.graph.node if n.op_type == "Sqrt"):
        # walk back from the Sqrt; keep the nodes on paths that reach a reduction
        paths = [[sqrt]]
        for _ in range(STATS_DEPTH):
            grown = []
            for path in paths:
                for name in path[-1].input:
                    p = producer.get(name)
                    if p is None or p in path:
                        continue
                    if p.op_type in ("ReduceMean", "ReduceSum"):
                        found.update(x.name for x in path + [p])
                        sq = producer.get(p.input[0])     # the squares a variance sums lose most in int8
                        if sq is not None and (sq.op_type == "Pow" or
                                               (sq.op_type == "Mul" and sq.input[0] == sq.input[1])):
                            found.add(sq.name)
                    else:
                        grown.append(path + [p])
            paths = grown[:256]
        if sqrt.name in found:
            found.update(u.name for u in users.get(sqrt.output[0], []) if u.op_type in ("Reciprocal", "Div"))
    return found


MASK_SCALE = 1e4         # a Mul by a constant this large turns a mask into "minus infinity" for a softmax
MASK_DEPTH = 6


def additive_masks(model: onnx.ModelProto) -> set[str]:
    """Nodes computing an additive attention mask from a model input: a Mul by a constant of magnitude
    ``MASK_SCALE`` or more (BERT-style ``(1 - mask) * finfo.min``) and the single-input chain (Cast, Sub from a
    constant, Unsqueeze, Reshape...) that leads to it from a graph input. One rounding step left on ``1 - mask``
    becomes 2e34 after the multiplication (MiniLM at int16x8: the step of an int16 SUB turned every valid
    token into minus infinity, attention uniform, worst cosine 0.73); computed in float it is exactly 0."""
    inputs = {i.name for i in model.graph.input}
    consts = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute:
            consts[n.output[0]] = n.attribute[0].t
    producer = {o: n for n in model.graph.node for o in n.output}
    found: set[str] = set()
    for mul in (n for n in model.graph.node if n.op_type == "Mul" and len(n.input) == 2):
        c = [i for i in mul.input if i in consts]
        if len(c) != 1:
            continue
        value = onnx.numpy_helper.to_array(consts[c[0]])
        if value.size == 0 or not np.issubdtype(value.dtype, np.floating) or \
                float(np.max(np.abs(value.astype(np.float64)))) < MASK_SCALE:
            continue
        chain, name = [mul], next(i for i in mul.input if i not in consts)
        for _ in range(MASK_DEPTH):
            if name in inputs:
                found.update(x.name for x in chain)
                break
            node = producer.get(name)
            live = [i for i in node.input if i and i not in consts] if node is not None else []
            if node is None or len(live) != 1:
                break
            chain.append(node)
            name = live[0]
    return found


COARSE = 0.05            # a fixed-grid output off by more than this share of its calibrated range stays float
_LAYOUT = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE")
_CURVES = {"LOGISTIC": lambda x: 1.0 / (1.0 + np.exp(-x)), "TANH": np.tanh}


def fixed_grid_error(opcode: str, activations: str) -> tuple[float, float, float] | None:
    """(lowest, highest, step) an int8 or int16 ``opcode`` with a fixed output grid can give (SOFTMAX,
    LOGISTIC, TANH...), or None when its output parameters follow its calibrated range. int16 LOGISTIC and
    TANH also saturate their input at +-8 (``int16.INPUT16``): sigmoid's int16 output never goes under 3.4e-4."""
    from .full_integer import FIXED
    from .int16 import FIXED16, INPUT16, QMAX16
    if activations == "int16":
        if opcode not in FIXED16:
            return None
        step = FIXED16[opcode][0]
        lo, hi = -QMAX16 * step, QMAX16 * step
        if opcode in INPUT16:
            edge = INPUT16[opcode][0] * QMAX16
            lo, hi = (float(_CURVES[opcode](-edge)), float(_CURVES[opcode](edge)))
        return (max(lo, 0.0) if opcode == "SOFTMAX" else lo), hi, step
    if opcode not in FIXED:
        return None
    step, zp = FIXED[opcode]
    return step * (-128 - zp), step * (127 - zp), step


def coarse_outputs(graph, ranges: dict, activations: str = "int8") -> list[dict]:
    """Ops with a fixed output grid (SOFTMAX, LOGISTIC, TANH) whose result is a model output (directly or
    through reshapes) and whose calibrated values the grid cannot resolve: the worst error the grid makes on
    them (half a step, or the distance to the nearest value it can give) is over ``COARSE`` of their range.
    A wake-word head whose sigmoid reads 1e-5 ... 2e-4 gets 0 at int8 (grid step 1/256: cosine 0 against
    fp32) and 3.4e-4 at int16 (the input saturates at -8); computed in float after its integer input it
    costs one DEQUANTIZE. Returns [{"node", "tensor", "op", "range", "error"}] for those to keep float."""
    users: dict[str, list] = {}
    for op in graph.ops:
        for i in op.inputs:
            if i:
                users.setdefault(i, []).append(op)
    outputs = set(graph.outputs)

    def reaches_output(name: str) -> bool:
        for _ in range(8):
            if name in outputs:
                return True
            after = users.get(name, [])
            if len(after) != 1 or after[0].opcode not in _LAYOUT:
                return False
            name = after[0].outputs[0]
        return False

    found = []
    for op in graph.ops:
        grid = fixed_grid_error(op.opcode, activations)
        r = ranges.get(op.outputs[0]) if op.outputs else None
        if grid is None or r is None or not reaches_output(op.outputs[0]):
            continue
        lo, hi = float(r[0]), float(r[1])
        error = max(grid[2] / 2, grid[0] - lo, hi - grid[1])
        if error > COARSE * (hi - lo):
            found.append({"node": op.origin, "tensor": op.outputs[0], "op": op.opcode,
                          "range": [lo, hi], "error": error})
    return found
