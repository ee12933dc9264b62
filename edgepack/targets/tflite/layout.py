"""Layout policy: NCHW in the ONNX model, NHWC inside the TFLite model, next to no TRANSPOSE ops.

Every op falls in one of three classes:

* **layout-transforming** (Conv, ConvTranspose, pools, Resize, LRN, DepthToSpace, SpaceToDepth,
  InstanceNorm...): TFLite only has NHWC kernels, so the converter wraps the op as
  ``TRANSPOSE(NCHW->NHWC) -> op -> TRANSPOSE(NHWC->NCHW)``.
* **layout-agnostic** (elementwise math and activations, reductions, ArgMax/ArgMin, Softmax over an axis
  that stays last, and the data-movement ops whose axis-like arguments are constants: Concat, Split,
  Slice (SLICE, and STRIDED_SLICE without ellipsis/new-axis/shrink masks), Pad in every mode, Tile,
  Expand (BROADCAST_TO of the same rank), Gather with 1-D indices, REVERSE_V2 whose permuted axes stay
  contiguous): the op can run in any layout if its axis-like arguments are permuted, so a TRANSPOSE
  feeding it is *pushed below it* (``try_push``), with constant operands permuted at build time
  (``ARG_REMAP`` holds the per-op rewrites of the data-movement ops).
* **layout-breaking** (Reshape, Flatten, MatMul, Gather with other index ranks, TopK, Softmax over another
  axis...): the data order matters; a TRANSPOSE stops here unless it only moves size-1 axes, in which case
  it is a RESHAPE (so ``GlobalAveragePool -> Flatten`` on [N, C, 1, 1] needs none).

The pass first rewrites channel shuffles (RESHAPE -> TRANSPOSE -> RESHAPE reordering one axis) as a
GATHER along that axis, then pushes transposes downward, composes neighbours
(``T_b(T_a(x)) = T_{a[b]}(x)``), drops identity permutations, pulls the remaining ones up through
same-rank layout-agnostic ops towards graph inputs, and finally absorbs a transpose that sits directly on
a graph input or output into the bundle's I/O description (``perm``), which the runtime applies with
numpy: users keep feeding the ONNX layout, and the model file itself runs NHWC end to end.
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from .ir import Graph, Op

NHWC = "_nhwc"       # suffix of a tensor the layout pass moved to NHWC: ``x_nhwc`` holds ONNX's ``x``


def onnx_name(name: str) -> str:
    """The ONNX tensor a lowered tensor carries (``x_nhwc`` -> ``x``; other names are their own)."""
    return name[:-len(NHWC)] if name.endswith(NHWC) else name


UNARY = {
    "ABS", "CAST", "CEIL", "COS", "DEQUANTIZE", "ELU", "EXP", "FLOOR", "GELU", "HARD_SWISH",
    "LEAKY_RELU", "LOG", "LOGICAL_NOT", "LOGISTIC", "NEG", "QUANTIZE", "RELU", "RELU6", "RELU_N1_TO_1",
    "RELU_0_TO_1", "ROUND", "RSQRT", "SIGN", "SIN", "SQRT", "SQUARE", "TANH", "ZEROS_LIKE",
}
BROADCAST = {
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "POW", "SQUARED_DIFFERENCE", "FLOOR_DIV",
    "FLOOR_MOD", "EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL",
    "LOGICAL_AND", "LOGICAL_OR", "SELECT_V2", "PRELU", "ATAN2",
}
REDUCE = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL"}


def perm_of(graph: Graph, op: Op) -> list[int] | None:
    if op.opcode != "TRANSPOSE":
        return None
    data = graph.tensors[op.inputs[1]].data
    return None if data is None else [int(p) for p in data]


def is_pure_reshape(shape, perm) -> bool:
    """A transpose that keeps the order of all non-1 axes does not move data."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


# --- axis-like arguments of data-movement ops -------------------------------------------------
# A remap rewrites ``op`` so that it computes the same values on its data input laid out by ``q``: data axis
# ``a`` becomes axis ``q[a]``, and a per-axis vector ``v`` becomes ``w`` with ``w[q[a]] = v[a]``. Pushing a
# TRANSPOSE(perm) below an op remaps with ``q = perm``; pulling one above it remaps with ``q = argsort(perm)``.
# Each remap validates before it mutates and returns False when it cannot express the op.

def _const(g: Graph, name: str | None) -> np.ndarray | None:
    return None if name is None else g.tensors[name].data


def _per_axis(g: Graph, op: Op, i: int, q) -> bool:
    data = _const(g, op.inputs[i])
    if data is None or data.ndim == 0 or data.shape[0] != len(q):
        return False
    new = np.empty_like(data)
    new[list(q)] = data
    op.inputs[i] = g.const(new, "axis_arg", data.dtype)
    return True


def _axis_input(g: Graph, op: Op, i: int, q) -> bool:
    data = _const(g, op.inputs[i])
    if data is None:
        return False
    new = np.asarray([q[int(a) % len(q)] for a in np.ravel(data)], data.dtype).reshape(data.shape)
    op.inputs[i] = g.const(new, "axis", data.dtype)
    return True


def _remap_strided_slice(g: Graph, op: Op, q) -> bool:
    o = op.options
    if o is not None and (o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask or o.offset):
        return False
    if any(_const(g, n) is None for n in op.inputs[1:4]):
        return False
    for i in (1, 2, 3):
        _per_axis(g, op, i, q)
    if o is not None:
        bits = lambda m: sum(1 << q[a] for a in range(len(q)) if m >> a & 1)  # noqa: E731
        o.beginMask, o.endMask = bits(o.beginMask), bits(o.endMask)
    return True


def _remap_slice(g: Graph, op: Op, q) -> bool:
    if _const(g, op.inputs[1]) is None or _const(g, op.inputs[2]) is None:
        return False
    return _per_axis(g, op, 1, q) and _per_axis(g, op, 2, q)


def _remap_gather(g: Graph, op: Op, q) -> bool:
    if len(g.tensors[op.inputs[1]].shape) != 1 or op.options.batchDims:
        return False
    op.options.axis = int(q[op.options.axis % len(q)])
    return True


def _remap_reverse(g: Graph, op: Op, q) -> bool:
    axes = _const(g, op.inputs[1])
    if axes is None:
        return False
    new = sorted(q[int(a) % len(q)] for a in np.ravel(axes))
    if new != list(range(new[0], new[0] + len(new))):  # the kernel reverses contiguous axes only
        return False
    op.inputs[1] = g.const(np.asarray(new, axes.dtype), "axes")
    return True


def _remap_broadcast_to(g: Graph, op: Op, q) -> bool:
    shape = _const(g, op.inputs[1])
    return shape is not None and shape.size == len(q) and _per_axis(g, op, 1, q)


ARG_REMAP = {  # opcode -> (index of the data input, remap)
    "SPLIT": (1, lambda g, op, q: _axis_input(g, op, 0, q)),
    "SPLIT_V": (0, lambda g, op, q: _const(g, op.inputs[1]) is not None and _axis_input(g, op, 2, q)),
    "STRIDED_SLICE": (0, _remap_strided_slice),
    "SLICE": (0, _remap_slice),
    "TILE": (0, lambda g, op, q: _per_axis(g, op, 1, q)),
    "BROADCAST_TO": (0, _remap_broadcast_to),
    "PAD": (0, lambda g, op, q: _per_axis(g, op, 1, q)),
    "PADV2": (0, lambda g, op, q: _per_axis(g, op, 1, q)),
    "MIRROR_PAD": (0, lambda g, op, q: _per_axis(g, op, 1, q)),
    "GATHER": (0, _remap_gather),
    "REVERSE_V2": (0, _remap_reverse),
}


class _Pass:
    def __init__(self, graph: Graph):
        self.g = graph

    def const_perm(self, perm) -> str:
        return self.g.const(np.asarray(perm, np.int32), "perm")

    # rewrite helpers ----------------------------------------------------------------------
    def hoist_output(self, op: Op, perm: list[int]) -> None:
        """``op`` now computes in the pre-transpose layout: re-add TRANSPOSE(perm) after each output."""
        inv = np.argsort(perm)
        for i, out in enumerate(op.outputs):
            t = self.g.tensors[out]
            inner = self.g.add(f"{out}{NHWC}", tuple(t.shape[k] for k in inv), t.dtype)
            op.outputs[i] = inner
            self.g.ops.append(Op("TRANSPOSE", [inner, self.const_perm(perm)], [out], None, op.origin))

    def untransposed(self, name: str, perm: list[int], rank: int, prod) -> str | None:
        """``name`` expressed before a TRANSPOSE(perm): its source, or a permuted constant."""
        p = prod.get(name)
        if p is not None and perm_of(self.g, p) == perm:
            return p.inputs[0]
        t = self.g.tensors[name]
        inv = [int(k) for k in np.argsort(perm)]
        if t.data is not None:
            data = t.data.reshape((1,) * (rank - t.data.ndim) + t.data.shape)
            return self.g.const(np.transpose(data, inv), f"{name}_perm", t.dtype)
        if len(t.shape) == rank and is_pure_reshape(t.shape, inv):  # moving size-1 axes is a RESHAPE
            moved = self.g.add(f"{name}_r", tuple(t.shape[k] for k in inv), t.dtype)
            shape = np.asarray(self.g.tensors[moved].shape, np.int32)
            opts = fb.ReshapeOptionsT()
            opts.newShape = shape.tolist()
            self.g.ops.append(Op("RESHAPE", [name, self.g.const(shape, "shape")], [moved], opts))
            return moved
        return None

    def try_push(self, op: Op, prod) -> bool:
        """Move a TRANSPOSE feeding ``op`` below it when ``op`` is layout-agnostic."""
        if op.opcode in ("TRANSPOSE", "RESHAPE"):
            return False
        feeds = [prod.get(n) for n in op.inputs if n is not None]
        perms = [perm_of(self.g, p) for p in feeds if p is not None]
        perms = [p for p in perms if p is not None]
        if not perms:
            return False
        perm = perms[0]
        rank = len(perm)
        code = op.opcode
        if code in UNARY or code in BROADCAST:
            if any(len(self.g.tensors[o].shape) != rank for o in op.outputs):
                return False
            new_inputs = []
            for n in op.inputs:
                src = self.untransposed(n, perm, rank, prod)
                if src is None:
                    return False
                new_inputs.append(src)
            op.inputs = new_inputs
        elif code in ("CONCATENATION",):
            new_inputs = [self.untransposed(n, perm, rank, prod) for n in op.inputs]
            if any(n is None for n in new_inputs):
                return False
            op.inputs = new_inputs
            op.options.axis = int(perm[op.options.axis % rank])
        elif code in ("SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION"):
            if perm[-1] != rank - 1 or prod.get(op.inputs[0]) is None or perm_of(self.g, prod[op.inputs[0]]) != perm:
                return False
            op.inputs[0] = prod[op.inputs[0]].inputs[0]
        elif code in ARG_REMAP:
            return self.push_data_op(op, prod)
        elif code in REDUCE or code in ("ARG_MAX", "ARG_MIN"):
            return self.push_reduce(op, perm, prod)
        else:
            return False
        self.hoist_output(op, perm)
        return True

    def push_data_op(self, op: Op, prod) -> bool:
        """A data-movement op fed by a TRANSPOSE on its data input runs on the transpose's source."""
        i, remap = ARG_REMAP[op.opcode]
        feed = prod.get(op.inputs[i])
        perm = perm_of(self.g, feed) if feed is not None else None
        if perm is None or len(perm) != len(self.g.tensors[op.inputs[i]].shape):
            return False
        if any(len(self.g.tensors[o].shape) != len(perm) for o in op.outputs) or not remap(self.g, op, perm):
            return False
        op.inputs[i] = feed.inputs[0]
        self.hoist_output(op, perm)
        return True

    def push_reduce(self, op: Op, perm, prod) -> bool:
        src = self.untransposed(op.inputs[0], perm, len(perm), prod)
        axes = self.g.tensors[op.inputs[1]].data
        if src is None or axes is None or self.g.tensors[src].data is not None:
            return False
        rank = len(perm)
        axes = sorted({int(a) % rank for a in np.ravel(axes)})
        new_axes = sorted(perm[a] for a in axes)
        op.inputs[0], op.inputs[1] = src, self.g.const(np.asarray(new_axes, np.int32), "axes")
        if op.options is not None and getattr(op.options, "keepDims", False):
            self.hoist_output(op, perm)
            return True
        kept = [perm[a] for a in range(rank) if a not in axes]     # source axes, in output order
        ranks = {ax: i for i, ax in enumerate(sorted(kept))}
        sub = [ranks[ax] for ax in kept]
        if sub == sorted(sub):
            return True
        self.hoist_output(op, sub)
        return True

    # local simplifications --------------------------------------------------------------
    def simplify_transpose(self, op: Op, prod) -> bool:
        perm = perm_of(self.g, op)
        if perm is None:
            return False
        src = self.g.tensors[op.inputs[0]]
        if src.data is not None:  # fold into the constant
            self.g.tensors[op.outputs[0]].data = np.ascontiguousarray(np.transpose(src.data, perm))
            self.g.ops.remove(op)
            return True
        if perm == list(range(len(perm))):
            self.g.replace_uses(op.outputs[0], op.inputs[0]) if op.outputs[0] not in self.g.outputs \
                else self._as_reshape(op)
            if op.outputs[0] not in self.g.outputs:
                self.g.ops.remove(op)
            return True
        up = prod.get(op.inputs[0])
        inner = perm_of(self.g, up) if up is not None else None
        if inner is not None:
            op.inputs = [up.inputs[0], self.const_perm([inner[p] for p in perm])]
            return True
        if is_pure_reshape(src.shape, perm):
            self._as_reshape(op)
            return True
        return False

    def _as_reshape(self, op: Op) -> None:
        shape = list(self.g.tensors[op.outputs[0]].shape)
        op.opcode = "RESHAPE"
        op.inputs = [op.inputs[0], self.g.const(np.asarray(shape, np.int32), "shape")]
        op.options = fb.ReshapeOptionsT()
        op.options.newShape = shape

    def simplify_reshape(self, op: Op, prod) -> bool:
        if op.opcode != "RESHAPE":
            return False
        src = self.g.tensors[op.inputs[0]]
        out = self.g.tensors[op.outputs[0]]
        if src.data is not None:
            out.data = np.ascontiguousarray(src.data.reshape(out.shape))
            self.g.ops.remove(op)
            return True
        up = prod.get(op.inputs[0])
        if up is not None and up.opcode == "RESHAPE":
            op.inputs[0] = up.inputs[0]
            return True
        if src.shape == out.shape and op.outputs[0] not in self.g.outputs:
            self.g.replace_uses(op.outputs[0], op.inputs[0])
            self.g.ops.remove(op)
            return True
        return False

    # pulling a transpose up towards a graph input, where ``absorb_io`` removes it -----------
    def reaches_inputs(self, name: str, users, prod, depth: int = 0) -> bool:
        """True when ``name`` comes from graph inputs through single-use layout-agnostic ops only."""
        if name in self.g.inputs or self.g.tensors[name].data is not None:
            return True
        op = prod.get(name)
        if op is None or depth > 32 or len(users.get(name, [])) != 1 or name in self.g.outputs:
            return False
        if op.opcode in ARG_REMAP:
            data = op.inputs[ARG_REMAP[op.opcode][0]]
            if len(op.outputs) != 1 or len(self.g.tensors[data].shape) != len(self.g.tensors[name].shape):
                return False
            return self.reaches_inputs(data, users, prod, depth + 1)
        if op.opcode not in UNARY and op.opcode not in BROADCAST:
            return False
        return all(self.reaches_inputs(n, users, prod, depth + 1) for n in op.inputs if n is not None)

    def try_pull(self, op: Op, prod, users) -> bool:
        """TRANSPOSE(A(x)) -> A'(TRANSPOSE(x)) when A's inputs lead back to graph inputs."""
        perm = perm_of(self.g, op)
        src = prod.get(op.inputs[0]) if perm is not None else None
        if src is None or len(src.outputs) != 1 or not self.reaches_inputs(op.inputs[0], users, prod):
            return False
        rank = len(perm)
        if src.opcode in ARG_REMAP:
            i, remap = ARG_REMAP[src.opcode]
            if not remap(self.g, src, [int(k) for k in np.argsort(perm)]):
                return False
            data_inputs = [i]
        else:
            data_inputs = range(len(src.inputs))
        for i in data_inputs:
            t = self.g.tensors[src.inputs[i]]
            if t.data is not None:
                data = t.data.reshape((1,) * (rank - t.data.ndim) + t.data.shape)
                src.inputs[i] = self.g.const(np.ascontiguousarray(np.transpose(data, perm)), f"{t.name}_perm", t.dtype)
            else:
                moved = self.g.add(f"{t.name}_t", tuple(t.shape[p] for p in perm), t.dtype)
                self.g.ops.append(Op("TRANSPOSE", [t.name, self.const_perm(perm)], [moved], None, op.origin))
                src.inputs[i] = moved
        src.outputs[0] = op.outputs[0]
        self.g.ops.remove(op)
        return True

    def _sweep(self, rewrite, with_users: bool = False) -> None:
        """Apply the simplifications and ``rewrite`` to every op until nothing changes. The graph's indexes
        (live ops by identity, producers, consumers) are rebuilt only after a change: rebuilding them per op
        made the sweep quadratic (PP-OCRv4's recognizer: 9 of its 10 s of lowering)."""
        for _ in range(1000):
            changed, index = False, None
            for op in list(self.g.ops):
                if index is None:
                    index = ({id(o) for o in self.g.ops}, self.g.producers(),
                             self.g.consumers() if with_users else None)
                alive, prod, users = index
                if id(op) not in alive:
                    continue
                if (self.simplify_transpose(op, prod) or self.simplify_reshape(op, prod)
                        or (rewrite(op, prod, users) if with_users else rewrite(op, prod))):
                    changed, index = True, None
                    self.g.prune(tensors=False)        # dead ops must not count as users; tensors can wait
            self.g.prune()
            self.g.toposort()
            if not changed:
                break

    def run(self) -> None:
        """Push transposes down (they cancel between layout-transforming ops), then pull the
        remaining ones up to graph inputs; two phases so the two moves never undo each other."""
        self._sweep(self.try_push)
        self._sweep(self.try_pull, with_users=True)


def absorb_io(graph: Graph) -> tuple[list[list[int] | None], list[list[int] | None]]:
    """Absorb transposes touching graph inputs/outputs; return the perms of inputs and outputs by position.

    ``perm`` follows the bundle convention: ``internal = np.transpose(public, perm)``.
    """
    in_perms: list[list[int] | None] = [None] * len(graph.inputs)
    users = graph.consumers()
    for i, name in enumerate(list(graph.inputs)):
        ops = users.get(name, [])
        perms = {tuple(perm_of(graph, o) or ()) for o in ops}
        if not ops or len(perms) != 1 or () in perms or name in graph.outputs \
                or any(o.outputs[0] in graph.outputs for o in ops):
            continue
        perm = list(perms.pop())
        t = graph.tensors[name]
        inner = graph.add(f"{name}{NHWC}", tuple(t.shape[p] for p in perm), t.dtype)
        for o in ops:
            graph.replace_uses(o.outputs[0], inner)
            graph.ops.remove(o)
        graph.inputs[i] = inner
        in_perms[i] = perm
    out_perms: list[list[int] | None] = [None] * len(graph.outputs)
    prod = graph.producers()
    for i, name in enumerate(list(graph.outputs)):
        op = prod.get(name)
        perm = perm_of(graph, op) if op is not None else None
        src = op.inputs[0] if op is not None else None
        if perm is None or src in graph.inputs or src in graph.outputs or graph.tensors[src].data is not None:
            continue
        graph.ops.remove(op)
        graph.outputs[i] = src
        out_perms[i] = [int(k) for k in np.argsort(perm)]
    graph.prune()
    return in_perms, out_perms


MAX_SHUFFLE_ELEMENTS = 1 << 21  # the shuffle check enumerates every element once at build time


def _one_axis_permutation(mid_shape, perm, shape) -> tuple[int, np.ndarray] | None:
    """When ``x.reshape(mid_shape).transpose(perm).reshape(shape)`` (x of ``shape``) only reorders one axis,
    return that axis and the source index of each of its positions, else None."""
    rank = len(shape)
    flat = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(mid_shape).transpose(perm).reshape(shape)
    coords = np.unravel_index(flat, shape)
    grid = lambda k: np.arange(shape[k]).reshape([-1 if i == k else 1 for i in range(rank)])  # noqa: E731
    moved = [k for k in range(rank) if not (coords[k] == grid(k)).all()]
    if len(moved) != 1:
        return None
    a = moved[0]
    line = coords[a][tuple(slice(None) if k == a else 0 for k in range(rank))]
    if not (coords[a] == line.reshape([-1 if k == a else 1 for k in range(rank)])).all():
        return None
    return a, line


def shuffles_as_gathers(graph: Graph) -> int:
    """RESHAPE -> TRANSPOSE -> RESHAPE back to the original shape that only reorders one axis (ShuffleNet's
    channel shuffle) becomes one GATHER along that axis: layout-agnostic, so the transposes around it cancel."""
    prod = graph.producers()
    rewritten = 0
    for op in list(graph.ops):
        tr = prod.get(op.inputs[0]) if op.opcode == "RESHAPE" else None
        perm = perm_of(graph, tr) if tr is not None else None
        first = prod.get(tr.inputs[0]) if perm is not None else None
        if first is None or first.opcode != "RESHAPE":
            continue
        src, out = graph.tensors[first.inputs[0]], graph.tensors[op.outputs[0]]
        if src.shape != out.shape or int(np.prod(src.shape)) > MAX_SHUFFLE_ELEMENTS:
            continue
        found = _one_axis_permutation(graph.tensors[tr.inputs[0]].shape, perm, src.shape)
        if found is None:
            continue
        op.opcode, op.options = "GATHER", fb.GatherOptionsT()
        op.options.axis = found[0]
        op.inputs = [first.inputs[0], graph.const(found[1].astype(np.int32), "indices")]
        rewritten += 1
    graph.prune()
    return rewritten


def sweep(graph: Graph, rewrite) -> None:
    """Apply ``rewrite(op, producers, consumers)`` (True when it changed the graph) to every op, with the
    transpose and reshape simplifications of the layout pass (a RESHAPE of a RESHAPE merged, a RESHAPE to
    its own shape dropped), until nothing changes."""
    _Pass(graph)._sweep(rewrite, with_users=True)


def optimize_layout(graph: Graph) -> None:
    """Rewrite channel shuffles as GATHERs, then move and cancel transposes (see the module docstring)."""
    shuffles_as_gathers(graph)
    _Pass(graph).run()
