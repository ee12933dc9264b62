"""Graph helpers for the transforms: initializers as arrays, who reads what, BatchNormalization folding."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import numpy_helper


class Graph:
    """A thin view of ``model.graph`` for rewriting weights in place (the model is the caller's copy)."""

    def __init__(self, model: onnx.ModelProto):
        self.model, self.g = model, model.graph
        self.refresh()

    def refresh(self) -> None:
        self.inits = {t.name: t for t in self.g.initializer}
        self.users: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        self.producer: dict[str, onnx.NodeProto] = {}
        for node in self.g.node:
            for name in node.input:
                if name:
                    self.users[name].append(node)
            for name in node.output:
                self.producer[name] = node
        self.outputs = {o.name for o in self.g.output}

    def const(self, name: str) -> np.ndarray | None:
        """The float initializer ``name`` as an array (None when it is not a float constant)."""
        t = self.inits.get(name)
        if t is None or t.data_type != onnx.TensorProto.FLOAT:
            return None
        return numpy_helper.to_array(t)

    def private(self, name: str) -> bool:
        """The initializer is read by one node input only, so rewriting it changes nothing else."""
        return name in self.inits and sum(list(n.input).count(name) for n in self.users[name]) == 1

    def set(self, name: str, value: np.ndarray) -> None:
        self.inits[name].CopyFrom(numpy_helper.from_array(np.asarray(value, np.float32), name))

    def add_const(self, name: str, value: np.ndarray) -> str:
        t = self.g.initializer.add()
        t.CopyFrom(numpy_helper.from_array(np.asarray(value, np.float32), name))
        self.inits[name] = t
        return name

    def only_user(self, tensor: str) -> onnx.NodeProto | None:
        """The single node reading ``tensor`` (None when several, none, or it is a graph output)."""
        users = self.users.get(tensor, [])
        if len(users) != 1 or tensor in self.outputs:
            return None
        return users[0]

    def unique(self, stem: str) -> str:
        taken = set(self.inits) | set(self.producer) | {i.name for i in self.g.input}
        name, i = stem, 0
        while name in taken:
            i += 1
            name = f"{stem}_{i}"
        return name


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def conv_weights(g: Graph, node: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """(weight, bias) of a Conv with private constant weight and bias (a zero bias is added when absent)."""
    if node.op_type != "Conv" or len(node.input) < 2 or not g.private(node.input[1]):
        return None
    w = g.const(node.input[1])
    if w is None:
        return None
    if len(node.input) > 2 and node.input[2]:
        b = g.const(node.input[2])
        if b is None or not g.private(node.input[2]):
            return None
        return w, b
    return w, np.zeros(w.shape[0], np.float32)


def weight_layers(g: Graph) -> list[onnx.NodeProto]:
    """Conv (2-D, any group) and MatMul nodes with private constant weights: the layers whose weights an
    int8 target rounds per output channel (a Conv's axis 0, a MatMul's last axis)."""
    out = []
    for node in g.g.node:
        if node.op_type == "Conv" and conv_weights(g, node) is not None and conv_weights(g, node)[0].ndim == 4:
            out.append(node)
        elif node.op_type == "MatMul" and g.private(node.input[1]) and node.input[0] != node.input[1]:
            w = g.const(node.input[1])
            if w is not None and w.ndim == 2:
                out.append(node)
    return out


def set_conv(g: Graph, node: onnx.NodeProto, w: np.ndarray, b: np.ndarray) -> None:
    g.set(node.input[1], w)
    if len(node.input) > 2 and node.input[2]:
        g.set(node.input[2], b)
        return
    name = g.add_const(g.unique(node.input[1] + "_bias"), b)
    while len(node.input) < 3:
        node.input.append("")
    node.input[2] = name
    g.users[name].append(node)


def fold_batchnorm(model: onnx.ModelProto, *, affine: bool = True) -> int:
    """Fold every inference BatchNormalization that alone reads a Conv's output into that Conv, then (with
    ``affine``) every per-channel constant Mul / Add (``fold_affine``); how many."""
    g = Graph(model)
    folded = []
    for node in g.g.node:
        if node.op_type != "BatchNormalization" or len(node.output) != 1:
            continue
        conv = g.producer.get(node.input[0])
        if conv is None or g.only_user(node.input[0]) is not node or (wb := conv_weights(g, conv)) is None:
            continue
        params = [g.const(n) for n in node.input[1:5]]
        if any(p is None for p in params):
            continue
        scale, beta, mean, var = params
        k = scale / np.sqrt(var + attr(node, "epsilon", 1e-5))
        w, b = wb
        set_conv(g, conv, w * k.reshape(-1, *[1] * (w.ndim - 1)), (b - mean) * k + beta)
        conv.output[0] = node.output[0]
        folded.append(node)
    for node in folded:
        g.g.node.remove(node)
    drop_unused(model)
    return len(folded) + (fold_affine(model) if affine else 0)


def _channel_const(g: Graph, node: onnx.NodeProto, tensor: str, channels: int, rank: int) -> np.ndarray | None:
    """The per-output-channel vector of a Mul / Add whose other input is a constant that broadcasts over
    the channel axis only ([C, 1, 1], [1, C, 1, 1] or a scalar); None otherwise."""
    if len(node.input) != 2 or tensor not in node.input:
        return None
    c = g.const(node.input[1] if node.input[0] == tensor else node.input[0])
    if c is None or c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + c.shape
    if c.size == 1:
        return np.full(channels, float(c.reshape(-1)[0]), np.float32)
    if c.size == channels and shape[1] == channels:
        return c.reshape(-1)
    return None


def fold_affine(model: onnx.ModelProto) -> int:
    """Fold a per-channel constant Mul / Add that alone reads a Conv's output into the Conv (the cpu target
    does the same when lowering, so int8 weights are rounded after the fold); how many."""
    g = Graph(model)
    folded = []
    for conv in list(g.g.node):
        while conv.op_type == "Conv" and (wb := conv_weights(g, conv)) is not None:
            node = g.only_user(conv.output[0])
            if node is None or node.op_type not in ("Mul", "Add"):
                break
            w, b = wb
            vec = _channel_const(g, node, conv.output[0], w.shape[0], len(w.shape))
            if vec is None:
                break
            if node.op_type == "Mul":
                set_conv(g, conv, w * vec.reshape(-1, *[1] * (w.ndim - 1)), b * vec)
            else:
                set_conv(g, conv, w, b + vec)
            conv.output[0] = node.output[0]
            g.producer[node.output[0]] = conv
            g.users[node.output[0]] = [n for n in g.users.get(node.output[0], [])]
            folded.append(node)
            g.g.node.remove(node)
            g.refresh()
    drop_unused(model)
    return len(folded)


def drop_unused(model: onnx.ModelProto) -> None:
    used = {n for node in model.graph.node for n in node.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    if len(keep) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)
    made = {n for node in model.graph.node for n in node.output}
    vis = [v for v in model.graph.value_info if v.name in made]
    del model.graph.value_info[:]
    model.graph.value_info.extend(vis)
