"""What a converter sees: the ONNX side (shapes, dtypes, constants, attributes) and the IR it writes.

Converters work in ONNX semantics and ONNX layout (NCHW). Layout-transforming ops wrap themselves in
TRANSPOSE ops via ``to_nhwc``/``from_nhwc``; ``layout.py`` then removes the transposes that cancel.
"""
from __future__ import annotations

import numpy as np
import onnx
from ai_edge_litert import schema_py_generated as fb
from onnx import helper

from ..registry import NodeContext
from .ir import Graph

NCHW_TO_NHWC = {3: [0, 2, 1], 4: [0, 2, 3, 1], 5: [0, 2, 3, 4, 1]}
NHWC_TO_NCHW = {3: [0, 2, 1], 4: [0, 3, 1, 2], 5: [0, 4, 1, 2, 3]}


class Context(NodeContext):
    def __init__(self, model: onnx.ModelProto):
        super().__init__(model)
        g = model.graph
        self.graph = Graph()
        self.graph.reserved = set(self.consts) | set(self._info) | {o for n in g.node for o in n.output}

    # --- ONNX side ------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.consts:
            return tuple(self.consts[name].shape)
        if name in self.graph.tensors:
            return self.graph.tensors[name].shape
        t = self._info[name].type.tensor_type
        return tuple(int(d.dim_value) for d in t.shape.dim)

    def dtype(self, name: str) -> np.dtype:
        if name in self.consts:
            return self.consts[name].dtype
        if name in self.graph.tensors:
            return self.graph.tensors[name].dtype
        elem = self._info[name].type.tensor_type.elem_type
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem))

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def const(self, name: str | None) -> np.ndarray | None:
        """The constant value of an ONNX tensor, or None when it is computed at run time."""
        if not name:
            return None
        if name in self.consts:
            return self.consts[name]
        t = self.graph.tensors.get(name)
        return t.data if t is not None else None

    # --- IR side --------------------------------------------------------------------------
    def tensor(self, name: str) -> str:
        """The IR tensor for an ONNX tensor (constants are materialized on first use)."""
        if name not in self.graph.tensors:
            if name in self.consts:
                data = np.ascontiguousarray(self.consts[name])
                self.graph.tensors[name] = _tensor(name, data.shape, data.dtype, data)
            else:
                raise self.fail(f"tensor '{name}' is used before it is produced")
        return name

    def output(self, name: str, shape=None, dtype=None) -> str:
        """Declare the IR tensor for an ONNX output (shape/dtype from ONNX unless given)."""
        shape = self.shape(name) if shape is None else shape
        dtype = self.dtype(name) if dtype is None else dtype
        self.graph.tensors[name] = _tensor(name, shape, dtype)
        return name

    def new(self, hint: str, shape, dtype) -> str:
        return self.graph.add(hint, shape, dtype)

    def constant(self, value, hint: str = "const", dtype=None) -> str:
        return self.graph.const(value, hint, dtype)

    def emit(self, opcode: str, inputs, outputs, options=None):
        origin = self.node.name if self.node is not None else ""
        return self.graph.op(opcode, inputs, outputs, options, origin)

    def unary(self, opcode: str, x: str, out: str, options=None) -> str:
        self.emit(opcode, [x], [out], options)
        return out

    # --- common building blocks ---------------------------------------------------------
    def transpose(self, x: str, perm, out: str | None = None) -> str:
        shape = self.graph.tensors[x].shape
        new_shape = tuple(shape[p] for p in perm)
        out = out or self.new(f"{x}_t", new_shape, self.graph.tensors[x].dtype)
        self.emit("TRANSPOSE", [x, self.constant(np.asarray(perm, np.int32), "perm")], [out])
        return out

    def reshape(self, x: str, shape, out: str | None = None) -> str:
        shape = [int(d) for d in shape]
        out = out or self.new(f"{x}_r", shape, self.graph.tensors[x].dtype)
        opts = fb.ReshapeOptionsT()
        opts.newShape = list(shape)
        self.emit("RESHAPE", [x, self.constant(np.asarray(shape, np.int32), "shape")], [out], opts)
        return out

    def cast(self, x: str, dtype, out: str | None = None) -> str:
        if self.graph.tensors[x].dtype == np.dtype(dtype):
            return x
        out = out or self.new(f"{x}_cast", self.graph.tensors[x].shape, dtype)
        self.emit("CAST", [x], [out])
        return out

    def to_nhwc(self, x: str) -> str:
        return self.transpose(x, NCHW_TO_NHWC[len(self.graph.tensors[x].shape)])

    def from_nhwc(self, x_nhwc: str, out: str) -> str:
        rank = len(self.graph.tensors[x_nhwc].shape)
        self.emit("TRANSPOSE", [x_nhwc, self.constant(np.asarray(NHWC_TO_NCHW[rank], np.int32), "perm")], [out])
        return out

    def nhwc_shape(self, onnx_name: str) -> tuple[int, ...]:
        s = self.shape(onnx_name)
        return tuple(s[p] for p in NCHW_TO_NHWC[len(s)])


def _tensor(name, shape, dtype, data=None):
    from .ir import Tensor
    return Tensor(name, tuple(int(d) for d in shape), np.dtype(dtype), data)
