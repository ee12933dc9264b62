"""Fused patterns on the freshly converted IR: exported GELU subgraphs become one TFLite GELU op.

Exporters before ONNX opset 20 spell GELU out: ``x * 0.5 * (1 + erf(x / sqrt(2)))`` (in any order of the
three factors, dividing by sqrt(2) or multiplying by its inverse) or the tanh approximation
``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))``. The Erf converter emits a fixed program
(``ops.math.erf_program``); the matcher checks a candidate against that very program, op by op and
constant by constant, so a subgraph is fused only when it computes exactly this function.

Run ``fuse_patterns`` right after the converters, before the layout and folding passes.
"""
from __future__ import annotations

import math

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from .ir import Graph, Op
from .ops.math import erf_program

_COMMUTATIVE = {"ADD", "MUL", "MAXIMUM", "MINIMUM", "EQUAL", "NOT_EQUAL", "LOGICAL_AND", "LOGICAL_OR"}


def _record_erf() -> list[tuple[str, list]]:
    """The Erf converter's program as steps (opcode, [("x",) | ("c", value) | ("s", step index)])."""
    steps: list[tuple[str, list]] = []

    def emit(code, inputs, options):
        steps.append((code, list(inputs)))
        return ("s", len(steps) - 1)

    erf_program(emit, lambda v: ("c", float(v)), ("x",))
    return steps


_ERF = _record_erf()


class _Matcher:
    def __init__(self, graph: Graph):
        self.g = graph
        self.prod = graph.producers()
        self.users = graph.consumers()

    def const(self, name: str | None, value: float, rtol: float = 1e-5) -> bool:
        t = self.g.tensors.get(name) if name else None
        return (t is not None and t.data is not None and t.data.size == 1 and t.dtype == np.float32
                and math.isclose(float(t.data.ravel()[0]), value, rel_tol=rtol, abs_tol=1e-12))

    def producer(self, name: str, opcode: str) -> Op | None:
        p = self.prod.get(name)
        if p is None or p.opcode != opcode or getattr(p.options, "fusedActivationFunction", 0):
            return None
        return p

    def private(self, name: str) -> bool:
        """Consumed by one op and not a graph output: folding it away loses nothing."""
        return len(self.users.get(name, [])) == 1 and name not in self.g.outputs

    def scaled(self, name: str, factor: float) -> str | None:
        """x when ``name`` is x * factor (MUL) or x / (1 / factor) (DIV)."""
        for code, c in (("MUL", factor), ("DIV", 1.0 / factor)):
            p = self.producer(name, code)
            if p is None:
                continue
            a, b = p.inputs[:2]
            if self.const(b, c, 1e-4) and self.g.tensors[a].data is None:
                return a
            if code == "MUL" and self.const(a, c, 1e-4) and self.g.tensors[b].data is None:
                return b
        return None

    def plus_one(self, name: str) -> str | None:
        """t when ``name`` is t + 1."""
        p = self.producer(name, "ADD")
        if p is None:
            return None
        a, b = p.inputs[:2]
        return a if self.const(b, 1.0) else b if self.const(a, 1.0) else None

    def erf_input(self, name: str) -> str | None:
        """u when ``name`` is the output of the Erf converter's program applied to u."""
        binding: dict = {}
        return binding.get("x") if self._step(len(_ERF) - 1, name, binding) else None

    def _step(self, i: int, name: str, binding: dict) -> bool:
        if ("s", i) in binding:
            return binding[("s", i)] == name
        code, refs = _ERF[i]
        p = self.prod.get(name)
        if p is None or p.opcode != code or len(p.inputs) != len(refs):
            return False
        orders = [refs, refs[::-1]] if code in _COMMUTATIVE else [refs]
        for order in orders:
            trial = dict(binding)
            if all(self._ref(r, n, trial) for r, n in zip(order, p.inputs)):
                binding.update(trial)
                binding[("s", i)] = name
                return True
        return False

    def _ref(self, ref, name: str, binding: dict) -> bool:
        if ref[0] == "c":
            return self.const(name, ref[1], 1e-6)
        if ref[0] == "x":
            return binding.setdefault("x", name) == name
        return self._step(ref[1], name, binding)

    def monomial(self, name: str) -> tuple[list[str], float]:
        """(variable factors, constant factor) of the product tree rooted at ``name`` (``factors``, four
        levels), SQUARE(x) read as x, x and POW(x, 2 or 3) as that many x (at the root or behind a private
        output). ``0.044715 * x^3`` written as ``x * (x * (0.044715 * x))`` (jax2tf) gives
        ([x, x, x], 0.044715)."""
        names, c = [], 1.0
        for f in self.factors(name, depth=3):
            t = self.g.tensors.get(f)
            if t is not None and t.data is not None and t.data.size == 1 and t.dtype == np.float32:
                c *= float(t.data.ravel()[0])
            else:
                names += self._powers(f) if f == name or self.private(f) else [f]
        return names, c

    def _powers(self, name: str) -> list[str]:
        p = self.producer(name, "POW")
        if p is not None:
            for k in (2, 3):
                if self.const(p.inputs[1], float(k)):
                    return [p.inputs[0]] * k
        p = self.producer(name, "SQUARE")
        return [p.inputs[0]] * 2 if p is not None else [name]

    def cubic_term(self, name: str, coeff: float) -> str | None:
        """x when ``name`` is ``coeff * x^3`` (any grouping of the product)."""
        names, c = self.monomial(name)
        if len(names) == 3 and len(set(names)) == 1 and math.isclose(c, coeff, rel_tol=1e-4):
            return names[0]
        return None

    def factors(self, name: str, depth: int = 1) -> list[str]:
        """The operands of a product tree rooted at ``name`` (through private MUL ops, ``depth`` levels)."""
        p = self.producer(name, "MUL")
        if p is None or depth < 0:
            return [name]
        return [f for n in p.inputs[:2] for f in
                (self.factors(n, depth - 1) if self.private(n) else [n])]


def _gelu_operand(m: _Matcher, root: Op) -> tuple[str, bool] | None:
    """(x, approximate) when ``root`` (a MUL) computes GELU(x)."""
    leaves = m.factors(root.outputs[0])
    halves = [i for i, f in enumerate(leaves) if m.const(f, 0.5)]
    if len(leaves) != 3 or len(halves) != 1:
        return None
    rest = leaves[:halves[0]] + leaves[halves[0] + 1:]
    for s, x in (rest, rest[::-1]):
        inner = m.plus_one(s) if m.g.tensors[x].data is None and m.private(s) else None
        if inner is None:
            continue
        u = m.erf_input(inner)
        if u is not None and m.scaled(u, 1 / math.sqrt(2)) == x:
            return x, False
        t = m.producer(inner, "TANH")
        arg = m.scaled(t.inputs[0], math.sqrt(2 / math.pi)) if t is not None else None
        add = m.producer(arg, "ADD") if arg is not None else None
        if add is not None and x in add.inputs[:2]:
            other = add.inputs[1] if add.inputs[0] == x else add.inputs[0]
            if m.cubic_term(other, 0.044715) == x:
                return x, True
    return None


def fuse_patterns(graph: Graph) -> int:
    """Rewrite erf- and tanh-based GELU subgraphs as one GELU op each; return how many were fused."""
    fused = 0
    m = _Matcher(graph)
    for root in list(graph.ops):
        if root.opcode != "MUL" or graph.tensors[root.outputs[0]].dtype != np.float32:
            continue
        if getattr(root.options, "fusedActivationFunction", 0) or root not in graph.ops:
            continue
        found = _gelu_operand(m, root)
        if found is None:
            continue
        opts = fb.GeluOptionsT()
        opts.approximate = found[1]
        root.opcode, root.inputs, root.options = "GELU", [found[0]], opts
        graph.prune()
        m = _Matcher(graph)
        fused += 1
    return fused
