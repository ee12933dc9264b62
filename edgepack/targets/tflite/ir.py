"""A small TFLite-level graph the converters write into and the passes rewrite.

Tensors are named; ops refer to tensors by name (``None`` marks an omitted optional input).
Constants carry their data. Shapes are static tuples. The writer (``writer.py``) turns the graph
into a flatbuffer; nothing here knows about ONNX.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | None = None
    quant: Any = None  # schema QuantizationParametersT, set by quantization passes
    scale: float = 1.0  # holds the source model's value times this (a factor a rewrite moved through it)

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass
class Op:
    opcode: str                      # BuiltinOperator name, e.g. "CONV_2D"
    inputs: list[str | None]
    outputs: list[str]
    options: Any = None              # a schema ``*OptionsT`` object or None
    origin: str = ""                 # ONNX node name this op came from (for reports)


@dataclass
class Graph:
    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    reserved: set[str] = field(default_factory=set)   # source-model names generated tensors must avoid

    def unique(self, hint: str) -> str:
        taken = lambda n: n in self.tensors or n in self.reserved  # noqa: E731
        if not taken(hint):
            return hint
        i = 1
        while taken(f"{hint}_{i}"):
            i += 1
        return f"{hint}_{i}"

    def add(self, hint: str, shape, dtype, data: np.ndarray | None = None) -> str:
        """Add a tensor under a fresh name derived from ``hint``; return the name."""
        name = self.unique(hint)
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), np.dtype(dtype), data)
        return name

    def const(self, value, hint: str = "const", dtype=None) -> str:
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == np.float64 and dtype is None:
            arr = arr.astype(np.float32)
        return self.add(hint, arr.shape, arr.dtype, np.ascontiguousarray(arr))

    def op(self, opcode: str, inputs, outputs, options=None, origin: str = "") -> Op:
        op = Op(opcode, list(inputs), list(outputs), options, origin)
        self.ops.append(op)
        return op

    # --- queries used by passes -------------------------------------------------------
    def producers(self) -> dict[str, Op]:
        return {out: op for op in self.ops for out in op.outputs}

    def consumers(self) -> dict[str, list[Op]]:
        users: dict[str, list[Op]] = {}
        for op in self.ops:
            for name in op.inputs:
                if name is not None:
                    users.setdefault(name, []).append(op)
        return users

    def count(self, opcode: str) -> int:
        return sum(op.opcode == opcode for op in self.ops)

    def replace_uses(self, old: str, new: str) -> None:
        """Point every consumer (and graph output slot) of ``old`` at ``new``."""
        for op in self.ops:
            op.inputs = [new if n == old else n for n in op.inputs]
        self.outputs = [new if n == old else n for n in self.outputs]

    def prune(self, tensors: bool = True) -> None:
        """Drop ops whose outputs are unused (and, in turn, the ops only they used), then (``tensors``)
        tensors nobody references. One pass with use counts: the repeated whole-graph scans it replaces made the layout
        sweep, which prunes after every change, quadratic in the graph's depth."""
        uses: dict[str, int] = {}
        for name in [n for op in self.ops for n in op.inputs if n is not None] + list(self.outputs):
            uses[name] = uses.get(name, 0) + 1
        prod = {o: op for op in self.ops for o in op.outputs}
        dead: set[int] = set()
        stack = [op for op in self.ops if not any(uses.get(o) for o in op.outputs)]
        while stack:
            op = stack.pop()
            if id(op) in dead:
                continue
            dead.add(id(op))
            for name in op.inputs:
                if name is None or name not in uses:
                    continue
                uses[name] -= 1
                p = prod.get(name)
                if uses[name] == 0 and p is not None and id(p) not in dead and not any(uses.get(o) for o in p.outputs):
                    stack.append(p)
        if dead:
            self.ops = [op for op in self.ops if id(op) not in dead]
        if not tensors:
            return
        live = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            live.update(n for n in op.inputs if n is not None)
            live.update(op.outputs)
        self.tensors = {k: v for k, v in self.tensors.items() if k in live}

    def toposort(self) -> None:
        """Order ops so every op comes after the producers of its inputs."""
        prod = self.producers()
        done: set[int] = set()
        order: list[Op] = []

        def visit(op: Op) -> None:
            stack = [(op, False)]
            while stack:
                cur, expanded = stack.pop()
                if id(cur) in done:
                    continue
                if expanded:
                    done.add(id(cur))
                    order.append(cur)
                    continue
                stack.append((cur, True))
                for name in cur.inputs:
                    p = prod.get(name) if name is not None else None
                    if p is not None and id(p) not in done:
                        stack.append((p, False))

        for op in self.ops:
            visit(op)
        self.ops = order
