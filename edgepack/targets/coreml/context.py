"""What a converter sees: the ONNX side (shapes, dtypes, constants, attributes) and the MIL values made
so far. Converters work in ONNX semantics and layout (NCHW is also Core ML's layout: nothing is
transposed). They call the coremltools MIL builder (``mb``) and ``set`` the ONNX outputs they produce.

Types: int64 tensors become int32 and float64 become float32 (ML Programs have neither); fp16 compute
precision is applied afterwards by coremltools' own pass, so converters always build fp32 programs.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..registry import NodeContext

NARROW = {np.dtype(np.int64): np.int32, np.dtype(np.float64): np.float32, np.dtype(np.int16): np.int32,
          np.dtype(np.int8): np.int32, np.dtype(np.uint8): np.int32}
MIL_DTYPE = {np.dtype(np.float32): "fp32", np.dtype(np.float16): "fp16", np.dtype(np.int32): "int32",
             np.dtype(np.bool_): "bool"}


def narrow(dtype) -> np.dtype:
    """The dtype an ONNX dtype has inside the ML Program."""
    dtype = np.dtype(dtype)
    return np.dtype(NARROW.get(dtype, dtype))


FP16_MAX = float(np.finfo(np.float16).max)


class Context(NodeContext):
    """``fp16``: the program will compute in fp16; float constants beyond fp16's range are clamped to
    +-65504 (``clamped`` lists them) instead of becoming +-inf in coremltools' fp16 pass, where BERT-style
    masks (``(1 - mask) * finfo(float32).min``) gave 0 * -inf = NaN on every valid token (MiniLM: NaN outputs)."""

    def __init__(self, model: onnx.ModelProto, fp16: bool = False):
        super().__init__(model)
        self.values: dict = {}              # ONNX tensor name -> MIL Var
        self._uid = 0
        self.fp16 = fp16
        self.clamped: list[str] = []

    # --- ONNX side ------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.consts:
            return tuple(self.consts[name].shape)
        t = self._info[name].type.tensor_type
        return tuple(int(d.dim_value) for d in t.shape.dim)

    def dtype(self, name: str) -> np.dtype:
        if name in self.consts:
            return self.consts[name].dtype
        elem = self._info[name].type.tensor_type.elem_type
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem))

    def rank(self, name: str) -> int:
        return len(self.shape(name))

    def const(self, name: str | None) -> np.ndarray | None:
        """The constant value of an ONNX tensor, or None when it is computed at run time."""
        return self.consts.get(name) if name else None

    # --- MIL side -------------------------------------------------------------------------
    def x(self, name: str):
        """The MIL value of an ONNX tensor: a Var, or a numpy constant (narrowed to an ML Program type)."""
        if name in self.values:
            return self.values[name]
        if name in self.consts:
            value = self.consts[name]
            value = value.astype(narrow(value.dtype)) if narrow(value.dtype) != value.dtype else value
            if self.fp16 and value.dtype.kind == "f" and value.size and np.max(np.abs(value)) > FP16_MAX:
                if name not in self.clamped:
                    self.clamped.append(name)
                value = np.clip(value, -FP16_MAX, FP16_MAX).astype(value.dtype)
            return value
        raise self.fail(f"tensor '{name}' is used before it is produced")

    def set(self, name: str, var) -> None:
        self.values[name] = var

    def name(self, hint: str = "") -> str:
        """A unique name for a helper op of the current node (ONNX output names go to the final op)."""
        self._uid += 1
        base = self.node.output[0] if self.node is not None and self.node.output else "edgepack"
        return f"{base}__{hint or 'op'}{self._uid}"

    def out(self, i: int = 0) -> str:
        return self.node.output[i]
