"""Op registries: one per target, keyed by (domain, op_type, since_version).

A converter registers with ``@REGISTRY.converts("Conv", since=11)``; an optional ``check`` function
returns a reason string when a particular node (attributes, dtypes, ranks) cannot be converted, so the
preflight can report every problem before any conversion starts. A node is resolved to the converter with
the greatest ``since`` not above the node's schema ``since_version`` for the model's opset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import onnx
import onnx.defs
from onnx import helper, numpy_helper

from ..errors import ConversionError, EdgepackError, UnsupportedOpsError


@dataclass(frozen=True)
class Entry:
    domain: str
    op_type: str
    since: int
    fn: Callable
    check: Callable | None
    doc: str


class Registry:
    def __init__(self, target: str, node_check: Callable | None = None):
        self.target = target
        self.node_check = node_check  # applies to every node before its converter's own check
        self._entries: dict[tuple[str, str], dict[int, Entry]] = {}

    def converts(self, op_type: str, since: int = 1, *, domain: str = "", check: Callable | None = None):
        """Decorator registering a converter; registering the same key twice is an error."""
        def wrap(fn):
            versions = self._entries.setdefault((domain, op_type), {})
            if since in versions:
                raise ValueError(f"{self.target}: {domain or 'ai.onnx'}::{op_type} since {since} registered twice")
            doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
            versions[since] = Entry(domain, op_type, since, fn, check, doc)
            return fn
        return wrap

    def resolve(self, node: onnx.NodeProto, opsets: dict[str, int]) -> Entry | None:
        versions = self._entries.get((node.domain, node.op_type))
        if not versions:
            return None
        domain = node.domain or ""
        version = opsets.get(domain, opsets.get("ai.onnx" if domain == "" else domain, 1))
        try:
            since = onnx.defs.get_schema(node.op_type, version, domain).since_version
        except Exception:  # custom domain without a schema: trust the model's opset
            since = version
        usable = [v for v in versions if v <= since]
        return versions[max(usable)] if usable else None

    def entries(self) -> list[Entry]:
        return sorted((e for vs in self._entries.values() for e in vs.values()),
                      key=lambda e: (e.domain, e.op_type, e.since))

    def preflight(self, graph: onnx.GraphProto, opsets: dict[str, int], ctx) -> list[Entry]:
        """Resolve every node; raise UnsupportedOpsError listing *all* problems at once."""
        problems, resolved = [], []
        for node in graph.node:
            opset = opsets.get(node.domain or "", 0)
            entry = self.resolve(node, opsets)
            if entry is None:
                known = self._entries.get((node.domain, node.op_type))
                reason = (f"only opset >= {min(known)} is supported" if known
                          else f"no {self.target} converter for this op")
                problems.append(dict(op_type=node.op_type, node=node.name, opset=opset, reason=reason))
                continue
            reason = None
            for check in (self.node_check, entry.check):
                if check is None or reason:
                    continue
                try:
                    reason = check(node, ctx)
                except KeyError:  # a shape not known yet (early preflight): the full one decides
                    reason = None
            if reason:
                problems.append(dict(op_type=node.op_type, node=node.name, opset=opset, reason=reason))
                continue
            resolved.append(entry)
        if problems:
            raise UnsupportedOpsError(self.target, problems)
        return resolved


class NodeContext:
    """The ONNX side every target's conversion context shares: the node being converted and its attributes."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        g = model.graph
        self.opsets = {(o.domain or ""): o.version for o in model.opset_import}
        self.opset = self.opsets.get("", self.opsets.get("ai.onnx", 1))
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self._info = {v.name: v for v in list(g.input) + list(g.value_info) + list(g.output)}
        self.node: onnx.NodeProto | None = None

    @staticmethod
    def attrs(node: onnx.NodeProto) -> dict:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    @staticmethod
    def inp(node: onnx.NodeProto, i: int) -> str | None:
        """The i-th input name, or None when absent or given as the empty string."""
        return node.input[i] if i < len(node.input) and node.input[i] else None

    def fail(self, message: str) -> ConversionError:
        n = self.node
        where = f"{n.op_type} node '{n.name}'" if n is not None else "graph"
        return ConversionError(f"{where}: {message}", hint="report this model; try --verbose for details")


def convert_nodes(graph: onnx.GraphProto, entries: list[Entry], ctx: NodeContext,
                  check: Callable[[onnx.NodeProto], str | None] = lambda node: None) -> None:
    """Run every node's converter in graph order (``entries`` from ``preflight``); a converter bug, or what
    ``check`` finds wrong after a node, becomes a ConversionError naming the node."""
    for node, entry in zip(graph.node, entries):
        ctx.node = node
        try:
            entry.fn(node, ctx)
        except EdgepackError:
            raise
        except Exception as exc:  # a converter bug: say where
            raise ctx.fail(f"{type(exc).__name__}: {exc}") from exc
        problem = check(node)
        if problem:
            raise ctx.fail(problem)
    ctx.node = None
