"""Graph clean-up: Identity/Dropout removal, unused optional outputs, dead nodes and initializers."""
from __future__ import annotations

import onnx
from onnx import ModelProto, NodeProto, numpy_helper

from edgepack.model.graphutil import (delete_indices, keep_only, node_inputs, opsets, rename_uses,
                                      static_shape, value_infos)


_SHAPE_KEEPERS = frozenset({"Reshape", "Expand", "Squeeze", "Unsqueeze", "Flatten", "Cast", "Transpose"})


def remove_aliases(model: ModelProto) -> int:
    """Drop Identity, inference-mode Dropout and no-op nodes by rewiring; returns how many.

    No-ops are shape/dtype-preserving Reshape, Expand, Squeeze, Unsqueeze, Flatten, Cast and
    identity Transposes (judged from the static shapes in value_info).

    Graph output names never change: when the alias writes a graph output, the producer of its
    input is renamed to that output instead, or (if that is impossible) an Identity stays.
    """
    graph = model.graph
    known = value_infos(graph)
    removed = 0
    for node in list(graph.node):
        src = _alias_source(model, node, known)
        if src is None:
            continue
        dst = node.output[0]
        if _drop_alias(graph, node, src, dst):
            removed += 1
        elif node.op_type != "Identity":
            _make_identity(node, src)
            removed += 1
    return removed


def _drop_alias(graph: onnx.GraphProto, node: NodeProto, src: str, dst: str) -> bool:
    outputs = {o.name for o in graph.output}
    if dst not in outputs:
        graph.node.remove(node)
        rename_uses(graph, dst, src)
        return True
    producer = next((n for n in graph.node if src in n.output), None)
    if producer is None or src in outputs:
        return False  # src is a graph input, an initializer or another output: keep an Identity
    graph.node.remove(node)
    producer.output[list(producer.output).index(src)] = dst
    rename_uses(graph, src, dst)
    stale = [vi for vi in graph.value_info if vi.name in (src, dst)]
    for vi in stale:
        graph.value_info.remove(vi)
    return True


def _alias_source(model: ModelProto, node: NodeProto, known: dict) -> str | None:
    if node.domain not in ("", "ai.onnx") or not node.input or not node.input[0]:
        return None
    if node.op_type == "Identity" or _is_noop(node, known):
        return node.input[0]
    if node.op_type != "Dropout" or _is_used(model.graph, node.output[1:]):
        return None
    if len(node.input) > 2 and node.input[2] and not _is_false_constant(model.graph, node.input[2]):
        return None
    return node.input[0]


def _is_noop(node: NodeProto, known: dict) -> bool:
    """Reshape/Expand/Squeeze/Unsqueeze/Flatten/Cast that keep shape and dtype; identity Transpose."""
    if node.op_type not in _SHAPE_KEEPERS or node.input[0] not in known or node.output[0] not in known:
        return False
    src, dst = known[node.input[0]], known[node.output[0]]
    shape = static_shape(src)
    if shape is None or shape != static_shape(dst):
        return False
    if src.type.tensor_type.elem_type != dst.type.tensor_type.elem_type:
        return False
    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        return perm is not None and perm == sorted(perm)
    return True


def _is_false_constant(graph: onnx.GraphProto, name: str) -> bool:
    tensor = next((t for t in graph.initializer if t.name == name), None)
    return tensor is not None and not numpy_helper.to_array(tensor).any()


def _is_used(graph: onnx.GraphProto, names) -> bool:
    names = {n for n in names if n}
    if not names:
        return False
    if names & {o.name for o in graph.output}:
        return True
    return any(names & set(node_inputs(n)) for n in graph.node)


def _make_identity(node: NodeProto, src: str) -> None:
    dst = node.output[0]
    node.op_type = "Identity"
    del node.input[:]
    node.input.append(src)
    del node.output[:]
    node.output.append(dst)
    del node.attribute[:]


def trim_unused_outputs(model: ModelProto) -> int:
    """Blank optional node outputs nobody reads (e.g. MaxPool indices); returns how many."""
    graph = model.graph
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node_inputs(node))
    versions = opsets(model)
    trimmed = 0
    for node in graph.node:
        optional = _optional_outputs(node, versions)
        for i, name in enumerate(node.output):
            if name and name not in used and i in optional:
                node.output[i] = ""
                trimmed += 1
        while len(node.output) > 1 and not node.output[-1]:
            del node.output[-1]
    return trimmed


def _optional_outputs(node: NodeProto, versions: dict[str, int]) -> set[int]:
    domain = "" if node.domain == "ai.onnx" else node.domain
    try:
        schema = onnx.defs.get_schema(node.op_type, versions.get(domain, 1), domain)
    except onnx.defs.SchemaError:
        return set()
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    return {i for i, p in enumerate(schema.outputs) if p.option == optional}


def remove_dead(model: ModelProto) -> int:
    """Drop nodes none of whose outputs reach a graph output, then unused initializers.

    Returns the number of nodes and initializers removed.
    """
    graph = model.graph
    live = {o.name for o in graph.output}
    dead: list[int] = []
    for i in reversed(range(len(graph.node))):
        node = graph.node[i]
        if live & set(node.output):
            live.update(node_inputs(node))
        else:
            dead.append(i)
    dead_nodes = delete_indices(graph.node, dead)
    dead_inits = keep_only(graph.initializer, lambda t: t.name in live)
    keep_only(graph.sparse_initializer, lambda s: s.values.name in live)
    produced = {o for n in graph.node for o in n.output}
    keep_only(graph.value_info, lambda vi: vi.name in produced)
    return dead_nodes + dead_inits
