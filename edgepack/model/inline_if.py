"""``If`` nodes with a constant condition are replaced by the branch they take.

The taken branch's nodes, initializers and nested subgraphs move into the main graph at the If's place
(the branch only reads names defined before the If, so topological order holds). Every name the branch
defines that is already used anywhere else in the model is renamed, in the branch and all its nested
subgraphs, so the graph stays in SSA form; each If output becomes an Identity of the branch's output
(``remove_aliases`` then drops it). Nested Ifs reach the main graph this way and are resolved by the
next round of folding. ``explain_live_ifs`` tells the user which inputs an unresolved If depends on.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from onnx import GraphProto, ModelProto, NodeProto, helper, numpy_helper

from edgepack.errors import UnsupportedOpsError
from edgepack.model.graphutil import node_inputs, subgraphs


def inline_constant_ifs(model: ModelProto) -> int:
    """Inline every main-graph ``If`` whose condition is an initializer; returns how many."""
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    todo = [n for n in graph.node if _is_if(n) and n.input[0] in consts]
    if not todo:
        return 0
    taken = definitions(graph)
    nodes: list[NodeProto] = []
    for node in graph.node:
        if not (_is_if(node) and node.input[0] in consts):
            nodes.append(node)
            continue
        for sub in subgraphs(node):
            taken -= definitions(sub)            # the If's own branches are not rivals of the one it takes
        cond = numpy_helper.to_array(consts[node.input[0]]).reshape(-1)
        branch = _attr_graph(node, "then_branch" if cond.size and bool(cond[0]) else "else_branch")
        nodes.extend(_inline(graph, node, branch, taken))
    del graph.node[:]
    graph.node.extend(nodes)
    return len(todo)


def _is_if(node: NodeProto) -> bool:
    return node.op_type == "If" and node.domain in ("", "ai.onnx") and bool(node.input) and bool(node.input[0])


def _attr_graph(node: NodeProto, name: str) -> GraphProto:
    branch = GraphProto()
    branch.CopyFrom(next(a.g for a in node.attribute if a.name == name))
    return branch


def _inline(graph: GraphProto, node: NodeProto, branch: GraphProto, taken: Counter) -> list[NodeProto]:
    """The branch's nodes (renamed apart from ``taken``) plus one Identity per If output."""
    mapping = {}
    for name in sorted(definitions(branch)):
        if taken[name] > 0:
            mapping[name] = _fresh(f"{node.name or 'If'}/{name}", taken)
    if mapping:
        _rename_all(branch, mapping)
    taken.update(definitions(branch))
    graph.initializer.extend(branch.initializer)
    graph.sparse_initializer.extend(branch.sparse_initializer)
    nodes = list(branch.node)
    for out, src in zip(node.output, branch.output):
        if out:
            nodes.append(helper.make_node("Identity", [src.name], [out], name=f"{node.name}/{out}"))
    return nodes


def _fresh(base: str, taken: Counter) -> str:
    name, i = base, 1
    while taken[name] > 0:
        name, i = f"{base}_{i}", i + 1
    taken[name] += 1
    return name


def definitions(graph: GraphProto) -> Counter:
    """How often each value name is defined in ``graph`` and, recursively, in its subgraphs."""
    names = Counter(vi.name for vi in graph.input)
    names.update(t.name for t in graph.initializer)
    names.update(s.values.name for s in graph.sparse_initializer)
    for node in graph.node:
        names.update(n for n in node.output if n)
        for sub in subgraphs(node):
            names.update(definitions(sub))
    return names


def _rename_all(graph: GraphProto, mapping: dict[str, str]) -> None:
    """Apply ``mapping`` to every definition and use in ``graph`` and its subgraphs (an alpha-renaming)."""
    for field in (graph.input, graph.output, graph.value_info):
        for vi in field:
            vi.name = mapping.get(vi.name, vi.name)
    for t in graph.initializer:
        t.name = mapping.get(t.name, t.name)
    for s in graph.sparse_initializer:
        s.values.name = mapping.get(s.values.name, s.values.name)
    for node in graph.node:
        for field in (node.input, node.output):
            for i, name in enumerate(field):
                if name in mapping:
                    field[i] = mapping[name]
        for sub in subgraphs(node):
            _rename_all(sub, mapping)


def live_inputs(graph: GraphProto, name: str) -> list[str]:
    """The graph inputs that ``name`` depends on (through nodes and the names their subgraphs read)."""
    producer = {o: n for n in graph.node for o in n.output if o}
    inputs = {vi.name for vi in graph.input}
    found, seen, stack = set(), set(), [name]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        if cur in inputs:
            found.add(cur)
        elif cur in producer:
            stack.extend(node_inputs(producer[cur]))
    return sorted(found)


def explain_live_ifs(model: ModelProto, preflight: Callable[[ModelProto], None]) -> None:
    """Run ``preflight``; when it refuses If nodes, say which live inputs their conditions read."""
    try:
        preflight(model)
    except UnsupportedOpsError as err:
        ifs = {n.name: n for n in model.graph.node if _is_if(n)}
        named = [p for p in err.problems if p["op_type"] == "If" and p["node"] in ifs]
        if not named:
            raise
        wanted: list[str] = []
        for p in named:
            cond = ifs[p["node"]].input[0]
            deps = live_inputs(model.graph, cond)
            wanted += [d for d in deps if d not in wanted]
            listed = ", ".join(f"'{d}'" for d in deps)
            why = f"depends on the live input(s) {listed}" if deps else "could not be folded to a constant"
            p["reason"] = f"{p['reason']}: its condition '{cond}' {why}"
        new = UnsupportedOpsError(err.target, err.problems)
        if wanted:
            example = " ".join(f"--input-value {d}=VALUE" for d in wanted)
            new.hint = (f"freeze the input(s) the If condition reads to the value the device always feeds "
                        f"({example}), so constant folding keeps only the branch taken; or " + new.hint)
        raise new from err

