"""A small ONNX node writer for ``rnn.py``: opset-aware Squeeze/Unsqueeze/Slice, fresh names, and the
``None`` convention for a state that is known to be zero (an absent ``initial_h``): ``add`` and ``mul``
fold it away, so step 0 of an RNN without an initial state carries no recurrent product.
"""
from __future__ import annotations

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper


class Emit:
    """Collects the nodes and initializers that replace one RNN node; every name is fresh."""

    def __init__(self, opset: int, taken, dtype: np.dtype, clip: float | None = None):
        self.opset, self.taken, self.dtype, self.clip = opset, taken, dtype, clip
        self.nodes: list[NodeProto] = []
        self.inits: list[TensorProto] = []
        self._zeros: dict[int, str] = {}
        self._axes_consts: dict[int, str] = {}
        self._bounds: list[str] = []

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while self.taken[name] > 0:
            name, i = f"{base}_{i}", i + 1
        self.taken[name] += 1
        return name

    def const(self, name: str, value: np.ndarray, dtype=None) -> str:
        name = self.fresh(name)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype or self.dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, out: str | None = None, **attrs) -> str:
        """One node named ``name`` (made fresh) writing ``out`` (default: the node's name)."""
        name = self.fresh(name)
        out = out or name
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    def add(self, a: str | None, b: str | None, name: str) -> str | None:
        if a is None or b is None:
            return a if b is None else b
        return self.op("Add", [a, b], name)

    def mul(self, a: str | None, b: str | None, name: str) -> str | None:
        return None if a is None or b is None else self.op("Mul", [a, b], name)

    def sub(self, a: str, b: str, name: str) -> str:
        return self.op("Sub", [a, b], name)

    def act(self, kind: str, x: str, name: str, clipped: bool = True) -> str:
        """``kind`` of ``x``; with the node's ``clip``, ``x`` is first bounded to [-clip, clip] (a gate input)."""
        if clipped and self.clip is not None:
            if self.opset >= 11:
                if not self._bounds:
                    self._bounds = [self.const(f"{name}_clip_{k}", v) for k, v in (("min", -self.clip),
                                                                                  ("max", self.clip))]
                x = self.op("Clip", [x, *self._bounds], f"{name}_clip")
            else:
                x = self.op("Clip", [x], f"{name}_clip", min=-self.clip, max=self.clip)
        return self.op(kind, [x], name)

    def gemm(self, x: str | None, w: str, b: str | None, rows: int, name: str) -> str | None:
        """``x @ w.T + b`` (constants; w is [rows, in], as ONNX RNN weights are); a zero ``x`` gives ``b``."""
        if x is None:
            return b
        if b is None and self.opset < 11:                      # Gemm's C is optional from opset 11
            b = self.zeros(rows, name)
        return self.op("Gemm", [x, w] + ([b] if b else []), name, transB=1)

    def zeros(self, size: int, name: str) -> str:
        if size not in self._zeros:
            self._zeros[size] = self.const(f"{name}_zeros", np.zeros(size))
        return self._zeros[size]

    def _axes(self, op_type: str, x: str, axes: list[int], name: str, out: str | None) -> str:
        if self.opset >= 13:
            return self.op(op_type, [x, self.const(f"{name}_axes", axes, np.int64)], name, out)
        return self.op(op_type, [x], name, out, axes=axes)

    def squeeze(self, x: str, axis: int, name: str, out: str | None = None) -> str:
        return self._axes("Squeeze", x, [axis], name, out)

    def unsqueeze(self, x: str, axis: int, name: str, out: str | None = None) -> str:
        return self._axes("Unsqueeze", x, [axis], name, out)

    def split(self, x: str, sizes: list[int], axis: int, name: str, parts: list[str] | None = None) -> list[str]:
        """``x`` cut along ``axis`` into ``sizes``; output names ``<name>_<i>`` or the given ``parts``. One Slice
        per part, not a Split: XNNPACK delegates SLICE but not SPLIT_V, which would cut its partition in two."""
        outs = [self.fresh(p) for p in parts] if parts else [self.fresh(f"{name}_{i}") for i in range(len(sizes))]
        start = 0
        for out, size in zip(outs, sizes):
            if self.opset >= 10:
                bounds = [self.const(f"{out}_{k}", [v], np.int64) for k, v in (("start", start), ("end", start + size))]
                self.nodes.append(helper.make_node("Slice", [x, *bounds, self._axis(axis, out)], [out], name=out))
            else:
                self.nodes.append(helper.make_node("Slice", [x], [out], name=out, starts=[start],
                                                   ends=[start + size], axes=[axis]))
            start += size
        return outs

    def _axis(self, axis: int, name: str) -> str:
        if axis not in self._axes_consts:
            self._axes_consts[axis] = self.const(f"{name}_axis", [axis], np.int64)
        return self._axes_consts[axis]

    def unstack(self, x: str, count: int, axis: int, name: str) -> list[str]:
        """``x`` cut along ``axis`` into ``count`` pieces of size 1, that axis squeezed away."""
        if count == 1:
            return [self.squeeze(x, axis, name)]
        parts = self.split(x, [1] * count, axis, f"{name}/split")
        return [self.squeeze(p, axis, f"{name}{i}") for i, p in enumerate(parts)]

    def stack(self, xs: list[str], name: str, out: str | None = None, axis: int = 0) -> str:
        """``xs`` joined along a new axis ``axis``."""
        if len(xs) == 1:
            return self.unsqueeze(xs[0], axis, name, out)
        parts = [self.unsqueeze(x, axis, f"{name}/{i}") for i, x in enumerate(xs)]
        return self.op("Concat", parts, name, out, axis=axis)
