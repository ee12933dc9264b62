"""ONNX ``LSTM``, ``GRU`` and ``RNN`` as primitive ops (Gemm, Add, Sub, Mul, Sigmoid, Tanh, Relu, Slice,
Squeeze, Unsqueeze, Concat), unrolled over a static sequence length: a target-neutral pass for targets that
have no converter for them.

Every direction (forward, reverse, bidirectional) runs the cell equations of the ONNX spec step by step;
input and recurrent products are two Gemms (weights [out, in], as the ONNX weights are, ``transB=1``),
so the input and the recurrent product get quantization ranges of their own; the gates are cut with Slice
(XNNPACK delegates it, not SPLIT_V). An absent initial state is a known zero: step 0 then has no recurrent
product. Node names keep the original: ``<node>/step0/gates``, ``<node>/back/step3/h`` for the reverse
direction. Supported: biases or none, peepholes, ``initial_h`` / ``initial_c`` as inputs or constants,
``sequence_lens`` absent or equal to the sequence length, activations Sigmoid/Tanh/Relu, layout 0 or 1,
``clip`` (gate inputs; not LSTM's h(C)), ``input_forget``. Refused (the node is named): other activations,
non-constant weights, a dynamic sequence length (fix it with ``--input-shape``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import ModelProto, NodeProto, helper, numpy_helper

from edgepack.errors import ModelError, UnsupportedOpsError
from edgepack.model.graphutil import main_opset, static_shape, value_infos
from edgepack.model.inline_if import definitions
from edgepack.model.rnn_emit import Emit

RNN_OPS = ("LSTM", "GRU", "RNN")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
MAX_STEPS = 1024                    # unrolled steps per node (each is ~16 nodes per direction)
SLOW_STEPS = 64                     # more steps x directions than this: say that the graph gets long

log = logging.getLogger("edgepack.model")


class Refused(Exception):
    """Why one RNN node cannot be decomposed (the message is for the user)."""


@dataclass
class Spec:
    node: NodeProto
    steps: int
    hidden: int
    directions: list[str]          # "forward" / "reverse", one per direction index
    acts: list[list[str]]          # ONNX op names, per direction
    W: np.ndarray                  # [dirs, gates*H, I]
    R: np.ndarray                  # [dirs, gates*H, H]
    B: np.ndarray | None           # [dirs, 2*gates*H]
    P: np.ndarray | None           # [dirs, 3*H] (LSTM)
    h0: str | None                 # initial_h / initial_c names; None when absent or all-zero constants
    c0: str | None
    linear_before_reset: bool = False
    layout: int = 0                # 0: X [T, B, I], states [dirs, B, H]; 1: X [B, T, I], states [B, dirs, H]
    clip: float | None = None      # gate inputs bounded to [-clip, clip] before their activations
    input_forget: bool = False     # LSTM: the forget gate is 1 - the input gate


def decompose_rnns(model: ModelProto, only: set[str] | None = None, *, strict: bool = True) -> dict[str, str]:
    """Replace each LSTM/GRU/RNN node (of ``only`` names, default all) by primitive ops, in place.

    Returns {node name: why it was kept} for the nodes that could not be decomposed; with ``strict`` the
    first of those raises ``ModelError`` naming the node instead. Shapes must be inferred (``simplify``).
    """
    graph = model.graph
    todo = [n for n in graph.node if _is_rnn(n) and (only is None or n.name in only)]
    if not todo:
        return {}
    known, consts = value_infos(graph), {t.name: t for t in graph.initializer}
    taken, opset, kept = definitions(graph), main_opset(model), {}
    new_nodes: list[NodeProto] = []
    chosen = {id(n) for n in todo}
    for node in graph.node:
        if id(node) not in chosen:
            new_nodes.append(node)
            continue
        try:
            spec = _spec(node, known, consts, opset)
        except Refused as why:
            if strict:
                raise ModelError(f"{node.op_type} node '{node.name}' cannot be decomposed into primitive ops: "
                                 f"{why}", hint=_hint(str(why))) from None
            kept[node.name] = str(why)
            new_nodes.append(node)
            continue
        emit = Emit(opset, taken, spec.W.dtype, spec.clip)
        _unroll(spec, emit)
        if spec.steps * len(spec.directions) > SLOW_STEPS:
            log.warning("%s node '%s' unrolled into %d nodes (%d steps x %d directions): long graphs convert "
                        "and run slower than a native recurrent kernel", node.op_type, node.name,
                        len(emit.nodes), spec.steps, len(spec.directions))
        new_nodes.extend(emit.nodes)
        graph.initializer.extend(emit.inits)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return kept


def decompose_refused(model: ModelProto, preflight: Callable[[ModelProto], None]):
    """Decompose the RNN nodes ``preflight`` (a target's op check) refuses; the others stay, for targets
    that run them. Returns (how many were decomposed, a preflight that says why a kept one stayed)."""
    if not any(_is_rnn(n) for n in model.graph.node):
        return 0, preflight
    try:
        preflight(model)
        return 0, preflight
    except UnsupportedOpsError as err:
        refused = {p["node"] for p in err.problems if p["op_type"] in RNN_OPS}
    before = sum(1 for n in model.graph.node if _is_rnn(n))
    kept = decompose_rnns(model, refused, strict=False) if refused else {}
    done = before - sum(1 for n in model.graph.node if _is_rnn(n))
    return done, (_explaining(preflight, kept) if kept else preflight)


def _explaining(preflight, kept: dict[str, str]):
    def check(model: ModelProto) -> None:
        try:
            preflight(model)
        except UnsupportedOpsError as err:
            named = [p for p in err.problems if p["node"] in kept]
            if not named:
                raise
            for p in named:
                p["reason"] = f"{p['reason']}; and it cannot be decomposed into primitive ops: {kept[p['node']]}"
            new = UnsupportedOpsError(err.target, err.problems)
            if any("--input-shape" in kept[p["node"]] for p in named):
                new.hint = "fix the sequence length with --input-shape NAME=..., or " + new.hint
            raise new from err
    return check


def _hint(why: str) -> str:
    if "--input-shape" in why:
        return "fix the sequence length with --input-shape NAME=... so the recurrence can be unrolled"
    return "pick a target that runs this op, or re-export the model without this setting"


def _is_rnn(node: NodeProto) -> bool:
    return node.op_type in RNN_OPS and node.domain in ("", "ai.onnx")


def _spec(node: NodeProto, known: dict, consts: dict, opset: int) -> Spec:
    kind, a = node.op_type, {x.name: helper.get_attribute_value(x) for x in node.attribute}
    if opset < 7:
        raise Refused(f"opset {opset} is older than the RNN semantics this pass knows (7+)")
    for attr, bad in (("clip", lambda v: not v > 0), ("layout", lambda v: v not in (0, 1))):
        if attr in a and bad(a[attr]):
            raise Refused(f"attribute {attr}={a[attr]} is not supported")
    direction = a.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs = {"forward": ["forward"], "reverse": ["reverse"], "bidirectional": ["forward", "reverse"]}.get(direction)
    if dirs is None:
        raise Refused(f"direction '{direction}' is not one of forward, reverse, bidirectional")
    layout = int(a.get("layout", 0))
    steps = _steps(node, known, layout)
    inp = list(node.input) + [""] * (8 - len(node.input))
    W, R = _const(inp[1], consts, "W"), _const(inp[2], consts, "R")
    B = _const(inp[3], consts, "B") if inp[3] else None
    P = _const(inp[7], consts, "P") if kind == "LSTM" and inp[7] else None
    if inp[4]:
        lens = _const(inp[4], consts, "sequence_lens")
        if np.any(lens != steps):
            raise Refused(f"sequence_lens {lens.tolist()} differ from the sequence length {steps}")
    hidden = int(a.get("hidden_size", R.shape[-1]))
    if W.shape[0] != len(dirs) or R.shape != (len(dirs), GATES[kind] * hidden, hidden):
        raise Refused(f"weights W{list(W.shape)} / R{list(R.shape)} do not fit hidden_size {hidden}")
    c0 = _state(inp[6], consts) if kind == "LSTM" else None
    return Spec(node, steps, hidden, dirs, _activations(kind, a, len(dirs)), W, R, B, P,
                _state(inp[5], consts), c0, bool(a.get("linear_before_reset", 0)), layout, a.get("clip"),
                bool(a.get("input_forget", 0)))


def _state(name: str, consts: dict) -> str | None:
    if not name or (name in consts and not np.any(numpy_helper.to_array(consts[name]))):
        return None
    return name


def _steps(node: NodeProto, known: dict, layout: int) -> int:
    vi = known.get(node.input[0])
    shape = static_shape(vi) if vi is not None else None
    if shape is None or len(shape) != 3:
        raise Refused(f"the shape of its input '{node.input[0]}' is not static, so the sequence length is "
                      "unknown; fix the model's dynamic input dims with --input-shape NAME=...")
    steps = shape[layout]
    if not 1 <= steps <= MAX_STEPS:
        raise Refused(f"sequence length {steps} is outside 1..{MAX_STEPS} (the steps are unrolled); "
                      "choose another length with --input-shape NAME=...")
    return steps


def _const(name: str, consts: dict, what: str) -> np.ndarray:
    if name not in consts:
        raise Refused(f"its {what} ('{name}') is computed at run time; only constant {what} can be unrolled")
    return numpy_helper.to_array(consts[name])


def _activations(kind: str, a: dict, ndirs: int) -> list[list[str]]:
    per = len(DEFAULT_ACTS[kind])
    names = [x.decode() if isinstance(x, bytes) else x for x in a.get("activations", DEFAULT_ACTS[kind] * ndirs)]
    if len(names) != per * ndirs:
        raise Refused(f"activations {names} should list {per} per direction")
    unknown = [n for n in names if n.lower() not in ACTIVATIONS]
    if unknown:
        raise Refused(f"activation(s) {unknown} are not supported (only Sigmoid, Tanh, Relu)")
    ops = [ACTIVATIONS[n.lower()] for n in names]
    return [ops[d * per:(d + 1) * per] for d in range(ndirs)]


def _unroll(spec: Spec, emit: Emit) -> None:
    from edgepack.model.rnn_cells import CELLS, WEIGHTS, initial_states
    node, nd = spec.node, len(spec.directions)
    xs = emit.unstack(node.input[0], spec.steps, spec.layout, f"{node.name}/x")
    states = initial_states(spec, emit)
    hs, last = [[None] * spec.steps for _ in range(nd)], []
    for d, direction in enumerate(spec.directions):
        prefix = node.name + ("/back" if direction == "reverse" else "")
        order = range(spec.steps) if direction == "forward" else range(spec.steps - 1, -1, -1)
        state, weights = states[d], WEIGHTS[node.op_type](spec, emit, d, prefix)
        for t in order:
            state = CELLS[node.op_type](spec, emit, weights, xs[t], state, f"{prefix}/step{t}")
            hs[d][t] = state[0]
        last.append(state)
    outs, ax = list(node.output) + [""] * 3, spec.layout         # layout 1: batch stays the leading axis
    if outs[0]:
        per_step = [emit.stack([hs[d][t] for d in range(nd)], f"{node.name}/Y{t}", axis=ax)
                    for t in range(spec.steps)]
        emit.stack(per_step, f"{node.name}/Y", out=outs[0], axis=ax)
    if outs[1]:
        emit.stack([s[0] for s in last], f"{node.name}/Y_h", out=outs[1], axis=ax)
    if outs[2] and node.op_type == "LSTM":
        emit.stack([s[1] for s in last], f"{node.name}/Y_c", out=outs[2], axis=ax)
