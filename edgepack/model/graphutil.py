"""Small helpers over ``onnx.GraphProto`` shared by the loading passes."""
from __future__ import annotations

from collections.abc import Iterator

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, ValueInfoProto

STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


def main_opset(model: ModelProto) -> int:
    """The ai.onnx opset version the model imports (0 when it imports none)."""
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx"):
            return op.version
    return 0


def opsets(model: ModelProto) -> dict[str, int]:
    """Imported opsets keyed by domain, with ai.onnx spelled ''."""
    return {("" if op.domain == "ai.onnx" else op.domain): op.version for op in model.opset_import}


def subgraphs(node: onnx.NodeProto) -> Iterator[GraphProto]:
    """Graph-valued attributes of a node (If/Loop/Scan bodies)."""
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def outer_names(graph: GraphProto) -> set[str]:
    """Names a subgraph reads from enclosing scopes (used but not defined inside)."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for sub in subgraphs(node):
            used |= outer_names(sub)
        defined.update(node.output)
    used.update(o.name for o in graph.output)
    return used - defined


def node_inputs(node: onnx.NodeProto) -> list[str]:
    """Explicit inputs plus names captured from outer scope by subgraph attributes."""
    names = [n for n in node.input if n]
    for sub in subgraphs(node):
        names.extend(sorted(outer_names(sub)))
    return names


def has_subgraph(node: onnx.NodeProto) -> bool:
    return any(True for _ in subgraphs(node))


def rename_uses(graph: GraphProto, old: str, new: str, *, outputs: bool = False) -> None:
    """Replace every read of ``old`` by ``new`` in ``graph`` and its subgraphs (not definitions).

    The main graph's output names are left alone unless ``outputs``; subgraph outputs may read
    outer-scope names, so they are renamed.
    """
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for sub in subgraphs(node):
            if old not in {x.name for x in sub.input} | {t.name for t in sub.initializer}:
                rename_uses(sub, old, new, outputs=True)
    if outputs:
        for out in graph.output:
            if out.name == old:
                out.name = new


def tensor_shape(vi: ValueInfoProto) -> list[int | str] | None:
    """Dims of a tensor value: ints where static, the symbol (or '?') where not; None if rank unknown."""
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
        return None
    dims: list[int | str] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return dims


def static_shape(vi: ValueInfoProto) -> list[int] | None:
    """Dims as ints when every dim is a known non-negative integer, else None."""
    dims = tensor_shape(vi)
    if dims is None or any(not isinstance(d, int) for d in dims):
        return None
    return dims  # type: ignore[return-value]


def is_complete(vi: ValueInfoProto) -> bool:
    """True when the value has a known dtype and a fully static shape (non-tensor types: known type)."""
    if vi.type.HasField("tensor_type"):
        return vi.type.tensor_type.elem_type != 0 and static_shape(vi) is not None
    return vi.type.WhichOneof("value") is not None


def value_infos(graph: GraphProto) -> dict[str, ValueInfoProto]:
    """Every typed name in the graph: inputs, value_info, outputs, and initializers (as ValueInfo)."""
    known: dict[str, ValueInfoProto] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        known[vi.name] = vi
    for t in graph.initializer:
        known[t.name] = onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
    return known


def short_shape(dims: list[int | str] | None) -> str:
    if dims is None:
        return "[unknown rank]"
    return "[" + ",".join(str(d) for d in dims) + "]"


def keep_only(field, keep) -> int:
    """Delete, in place, the items of a repeated protobuf field for which ``keep(item)`` is false.

    Deleting by index avoids copying the kept items (weights can be hundreds of MB).
    Returns how many were deleted.
    """
    return delete_indices(field, [i for i, item in enumerate(field) if not keep(item)])


def delete_indices(field, indices: list[int]) -> int:
    """Delete the items at ``indices`` from a repeated protobuf field; returns how many."""
    for i in sorted(set(indices), reverse=True):
        del field[i]
    return len(set(indices))


def unique_name(graph: GraphProto, name: str) -> str:
    """``name``, or ``name_1``, ``name_2``... : the first not yet taken by an initializer or a node output."""
    taken = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
    base, i = name, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name
