"""Decomposed LayerNormalization and Softmax found by what they compute, and replaced by the single op.

Exporters (jax2tf, older PyTorch, TF converters) write a layer norm as a dozen elementwise ops (mean as
ReduceSum times 1/N, variance as E[x^2] - E[x]^2, Max(var, 0), Sqrt, Reciprocal...) and a softmax as
Exp(x - ReduceMax(x)) / ReduceSum(...). Quantized per tensor, those pieces lose everything: ``x - mean``
cancels, ``E[x^2] - E[x]^2`` cancels, and ``Exp``'s output spans a range where the small terms that carry
the distribution round to zero (magika's byte classifier: layer-norm output at -17 dB SNR, the softmax at
-2 dB, on 8-bit activations). The single op quantizes only its input and output, and HTP, Core ML and
most NPUs run it internally at higher precision.

``fuse(model)`` works on the graph in place. The search does not depend on how the export spelled the ops:

1. every ReduceMean / ReduceSum / ReduceMax over the last axis of a non-constant tensor ``x`` is a seed;
2. the seed's region is every node computed from ``x`` and constants only (in graph order);
3. a candidate output ``y`` is a tensor of the region with ``x``'s shape whose ancestors in the region
   (the nodes between ``x`` and ``y``) leak nothing else: no other tensor of theirs is read outside or is a
   graph output; the seed must be one of them;
4. the candidate is run in onnxruntime on random inputs of ``x``'s shape (with a per-row offset, so that a
   missing mean subtraction shows) and kept when it is ``softmax(x)`` along the last axis, or
   ``gamma * (x - mean) / sqrt(var + eps) + beta`` with per-channel ``gamma`` / ``beta`` fitted on one input
   and confirmed on another (``eps``: the small constant of the region); the farthest such ``y`` wins, so
   the affine part is included.

LayerNormalization needs opset 17: a model below it gets its layer norms fused only if ``onnx``'s version
converter takes it to 17 (the caller's choice, ``allow_opset_upgrade``); Softmax fuses at any opset.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graphutil import main_opset, unique_name

SEEDS = ("ReduceMean", "ReduceSum", "ReduceMax")
MAX_REGION = 40               # nodes of one seed's region considered (a layer norm is ~15, a softmax 5)
RTOL = 1e-3                   # |fused - decomposed| / max|decomposed| to accept a candidate
LAYERNORM_OPSET = 17


def fuse(model: onnx.ModelProto, *, allow_opset_upgrade: bool = True) -> tuple[onnx.ModelProto, list[dict]]:
    """(model, what was fused): decomposed layer norms and softmaxes replaced by LayerNormalization / Softmax.
    The model may be a new object when its opset was raised for LayerNormalization."""
    fused: list[dict] = []
    done: set[str] = set()        # seeds (by output name) already judged: no match, or a layer norm left alone
    for _ in range(512):          # one replacement per pass: the graph changes under the search
        graph = _Graph(model)
        found = None
        for seed in graph.seeds():
            key = graph.nodes[seed].output[0]
            if key in done:
                continue
            found = graph.match(seed)
            if found is not None:
                break
            done.add(key)
        if found is None:
            break
        if found["kind"] == "LayerNormalization" and main_opset(model) < LAYERNORM_OPSET:
            upgraded = _upgrade(model) if allow_opset_upgrade else None
            if upgraded is None:
                done.add(found["seed"])
            else:
                model = upgraded
            continue
        _replace(model, found)
        fused.append({k: found[k] for k in ("kind", "output", "nodes")})
    return model, fused


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        g = model.graph
        self.nodes = list(g.node)
        self.consts = {t.name: t for t in g.initializer}
        self.outputs = {o.name for o in g.output}
        self.readers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for t in n.input:
                self.readers.setdefault(t, []).append(i)
        self.shapes = _shapes(model)

    def seeds(self):
        for i, n in enumerate(self.nodes):
            if n.op_type in SEEDS and n.input and n.input[0] not in self.consts and self.axis(n) is not None:
                yield i

    def axis(self, n: onnx.NodeProto) -> int | None:
        """The one axis (non-negative) a reduction works over; None for several or unknown ones."""
        shape = self.shapes.get(n.input[0])
        if not shape:
            return None
        axes = next((list(a.ints) for a in n.attribute if a.name == "axes"), None)
        if axes is None and len(n.input) > 1 and n.input[1] in self.consts:
            axes = numpy_helper.to_array(self.consts[n.input[1]]).ravel().tolist()
        return int(axes[0]) % len(shape) if axes is not None and len(axes) == 1 else None

    def match(self, seed: int) -> dict | None:
        x = self.nodes[seed].input[0]
        best = None
        axis = self.axis(self.nodes[seed])
        for y in self._candidates(x, self._region(x, seed), seed):
            found = _identify(self, x, y, axis)
            if found is not None:
                best = {**found, "seed": self.nodes[seed].output[0]}
            elif best is not None:
                break
        return best

    def _region(self, x: str, seed: int) -> list[int]:
        """Nodes computed from ``x`` and constants only, in graph order (the pieces of a variance may come
        before the mean's reduction), up to ``MAX_REGION`` after the seed."""
        made, region, after = {x}, [], 0
        for i, n in enumerate(self.nodes):
            live = [t for t in n.input if t and t not in self.consts]
            if live and all(t in made for t in live):
                region.append(i)
                made.update(o for o in n.output if o)
                after += i > seed
                if after >= MAX_REGION:
                    break
        return region

    def _candidates(self, x: str, region: list[int], seed: int):
        producer = {o: i for i in region for o in self.nodes[i].output if o}
        want = self.shapes.get(x)
        for i in region:
            for y in self.nodes[i].output:
                if not y or self.shapes.get(y) != want:
                    continue
                inside = _ancestors(self.nodes, producer, y)
                if seed not in inside:
                    continue
                leaks = [t for j in inside for t in self.nodes[j].output if t and t != y and
                         (t in self.outputs or any(r not in inside for r in self.readers.get(t, [])))]
                if not leaks:
                    yield y, sorted(inside)


def _ancestors(nodes, producer: dict[str, int], y: str) -> set[int]:
    seen, stack = set(), [producer[y]]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        stack.extend(producer[t] for t in nodes[i].input if t in producer)
    return seen


PROBES = 4                    # random inputs the affine part is fitted on (one more confirms it)


def _identify(graph: _Graph, x: str, cand, axis: int) -> dict | None:
    y, inside = cand
    shape = graph.shapes[x]
    run = _runner(graph, x, y, inside)
    if run is None:
        return None
    rng = np.random.default_rng(0)
    probes = [_probe(rng, shape, axis) for _ in range(PROBES + 1)]
    outs = [run(a) for a in probes]
    if any(o is None or o.shape != tuple(shape) for o in outs):
        return None
    base = {"output": y, "input": x, "nodes": len(inside), "inside": inside, "axis": axis, "rank": len(shape)}
    if all(_close(_softmax(a, axis), o) for a, o in zip(probes, outs)):
        return {**base, "kind": "Softmax"}
    eps = _epsilon(graph, inside)
    normed = [_normalize(a, eps, axis) for a in probes]
    gamma, beta = _fit_affine(normed[:PROBES], outs[:PROBES], axis)
    if gamma is None:
        return None
    bshape = [1] * len(shape)
    bshape[axis] = shape[axis]
    g, b = gamma.reshape(bshape), beta.reshape(bshape)
    if all(_close(n * g + b, o) for n, o in zip(normed, outs)):
        return {**base, "kind": "LayerNormalization", "gamma": gamma, "beta": beta, "epsilon": eps}
    return None


def _probe(rng, shape, axis: int) -> np.ndarray:
    """Random input with an offset and a spread of its own per row (a row: the values along ``axis``)."""
    row = list(shape)
    row[axis] = 1
    return (rng.normal(0.0, 1.0, size=tuple(shape)) * rng.uniform(0.5, 2.0, size=tuple(row))
            + rng.normal(0.0, 3.0, size=tuple(row))).astype(np.float32)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _normalize(x: np.ndarray, eps: float, axis: int) -> np.ndarray:
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axis, keepdims=True)
    return (x64 - mean) / np.sqrt(((x64 - mean) ** 2).mean(axis=axis, keepdims=True) + eps)


def _fit_affine(normed: list[np.ndarray], outs: list[np.ndarray], axis: int):
    """Per-channel (gamma, beta) with out = normed * gamma + beta, least squares over every row of every probe."""
    c = normed[0].shape[axis]
    n2 = np.concatenate([np.moveaxis(n, axis, -1).reshape(-1, c) for n in normed])
    y2 = np.concatenate([np.moveaxis(o.astype(np.float64), axis, -1).reshape(-1, c) for o in outs])
    if n2.shape[0] < 2:
        return None, None
    nm, ym = n2.mean(axis=0), y2.mean(axis=0)
    var = ((n2 - nm) ** 2).sum(axis=0)
    gamma = np.where(var > 0, ((n2 - nm) * (y2 - ym)).sum(axis=0) / np.where(var > 0, var, 1), 0.0)
    return gamma, ym - gamma * nm


def _close(want: np.ndarray, got: np.ndarray) -> bool:
    if want.shape != got.shape or not np.all(np.isfinite(got)):
        return False
    scale = max(float(np.abs(want).max()), 1e-12)
    return bool(want.size) and float(np.abs(want - got).max()) <= RTOL * scale


def _epsilon(graph: _Graph, inside) -> float:
    """The region's variance epsilon: its smallest positive scalar constant up to 1e-2 (1e-5 if none)."""
    small = []
    for i in inside:
        for t in graph.nodes[i].input:
            if t in graph.consts:
                v = numpy_helper.to_array(graph.consts[t])
                if v.size == 1 and v.dtype.kind == "f" and 0.0 < float(v.ravel()[0]) <= 1e-2:
                    small.append(float(v.ravel()[0]))
    return min(small) if small else 1e-5


def _runner(graph: _Graph, x: str, y: str, inside):
    import onnxruntime as ort
    nodes = [graph.nodes[i] for i in inside]
    used = {t for n in nodes for t in n.input if t in graph.consts}
    sub = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT,
                                                                            graph.shapes[x])],
                            [helper.make_tensor_value_info(y, onnx.TensorProto.FLOAT, None)],
                            [graph.consts[t] for t in used])
    m = helper.make_model(sub, opset_imports=list(graph.model.opset_import), ir_version=graph.model.ir_version)
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception:            # a region onnxruntime cannot run alone (types, custom domains): not a match
        return None

    def run(a):
        try:
            return sess.run([y], {x: a})[0]
        except Exception:
            return None
    return run


def _replace(model: onnx.ModelProto, found: dict) -> None:
    """Swap the region for the op; a norm over an inner axis runs between two Transposes (LayerNormalization
    normalizes over every axis from ``axis`` on; Softmax takes any axis from opset 13)."""
    g = model.graph
    nodes = list(g.node)
    inside = set(found["inside"])
    x, y, kind, axis = found["input"], found["output"], found["kind"], found["axis"]
    name = f"{nodes[max(inside)].name or y}/fused_{kind}"
    shape_rank = found["rank"]
    last = axis == shape_rank - 1
    new: list[onnx.NodeProto] = []
    src, dst = x, y
    if not last and (kind == "LayerNormalization" or main_opset(model) < 13):
        perm = [d for d in range(shape_rank) if d != axis] + [axis]
        inverse = [perm.index(d) for d in range(shape_rank)]
        src, dst = unique_name(g, name + "/in"), unique_name(g, name + "/out")
        new.append(helper.make_node("Transpose", [x], [src], name=name + "/to_last", perm=perm))
        tail = helper.make_node("Transpose", [dst], [y], name=name + "/back", perm=inverse)
        op_axis = -1
    else:
        tail, op_axis = None, (axis if not last else -1)
    if kind == "Softmax":
        new.append(helper.make_node("Softmax", [src], [dst], name=name, axis=op_axis))
    else:
        gname, bname = unique_name(g, name + "/gamma"), unique_name(g, name + "/beta")
        g.initializer.extend([numpy_helper.from_array(found["gamma"].astype(np.float32), gname),
                              numpy_helper.from_array(found["beta"].astype(np.float32), bname)])
        new.append(helper.make_node("LayerNormalization", [src, gname, bname], [dst], name=name, axis=-1,
                                    epsilon=float(found["epsilon"])))
    if tail is not None:
        new.append(tail)
    first = min(inside)
    kept = [n for i, n in enumerate(nodes) if i not in inside]
    at = sum(1 for i in range(first) if i not in inside)
    kept[at:at] = new
    del g.node[:]
    g.node.extend(kept)
    live = {t for n in g.node for t in n.input} | {o.name for o in g.output}
    keep_inits = [t for t in g.initializer if t.name in live]
    del g.initializer[:]
    g.initializer.extend(keep_inits)


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    out = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if t.elem_type == onnx.TensorProto.FLOAT and t.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            if dims and all(d for d in dims):
                out[vi.name] = dims
    return out


def _upgrade(model: onnx.ModelProto) -> onnx.ModelProto | None:
    from onnx import version_converter
    try:
        return version_converter.convert_version(model, LAYERNORM_OPSET)
    except Exception:
        return None
