"""Helpers shared by the op families: spatial padding, activation fusion codes, broadcasting."""
from __future__ import annotations

import math

import numpy as np
from ai_edge_litert import schema_py_generated as fb

Padding = fb.Padding
Act = fb.ActivationFunctionType


def spatial_pads(attrs: dict, in_spatial, kernel, strides, dilations) -> list[tuple[int, int]]:
    """ONNX pads as [(begin, end)] per spatial axis, resolving ``auto_pad``."""
    n = len(in_spatial)
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for i in range(n):
            eff = (kernel[i] - 1) * dilations[i] + 1
            total = max((math.ceil(in_spatial[i] / strides[i]) - 1) * strides[i] + eff - in_spatial[i], 0)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return out
    if auto == "VALID":
        return [(0, 0)] * n
    pads = list(attrs.get("pads", [0] * (2 * n)))
    return [(pads[i], pads[i + n]) for i in range(n)]


def tf_same_pads(in_spatial, kernel, strides, dilations) -> list[tuple[int, int]]:
    """The padding TFLite's ``SAME`` applies (extra row/column at the end)."""
    out = []
    for i in range(len(in_spatial)):
        eff = (kernel[i] - 1) * dilations[i] + 1
        out_size = math.ceil(in_spatial[i] / strides[i])
        total = max((out_size - 1) * strides[i] + eff - in_spatial[i], 0)
        out.append((total // 2, total - total // 2))
    return out


def choose_padding(pads, in_spatial, kernel, strides, dilations):
    """Return (tflite padding enum, explicit pads still needed or None)."""
    if all(b == 0 and e == 0 for b, e in pads):
        return Padding.VALID, None
    if list(pads) == tf_same_pads(in_spatial, kernel, strides, dilations):
        return Padding.SAME, None
    return Padding.VALID, pads


def pad_nhwc(ctx, x_nhwc: str, pads, value: float = 0.0) -> str:
    """Explicit PAD/PADV2 on an NHWC tensor for spatial pads [(begin, end)] per spatial axis."""
    t = ctx.graph.tensors[x_nhwc]
    spec = np.zeros((len(t.shape), 2), np.int32)
    for i, (b, e) in enumerate(pads):
        spec[1 + i] = (b, e)
    shape = tuple(int(d + spec[k].sum()) for k, d in enumerate(t.shape))
    out = ctx.new(f"{x_nhwc}_pad", shape, t.dtype)
    if value == 0.0:
        ctx.emit("PAD", [x_nhwc, ctx.constant(spec, "paddings")], [out])
    else:
        ctx.emit("PADV2", [x_nhwc, ctx.constant(spec, "paddings"),
                           ctx.constant(np.asarray(value, dtype=t.dtype), "pad_value")], [out])
    return out


def expand_rank(ctx, x: str, rank: int) -> str:
    """Reshape ``x`` by prepending 1s up to ``rank`` (numpy broadcasting made explicit)."""
    shape = ctx.graph.tensors[x].shape
    if len(shape) >= rank:
        return x
    return ctx.reshape(x, (1,) * (rank - len(shape)) + tuple(shape))


F32 = {np.dtype(np.float32)}
NUMERIC = {np.dtype(t) for t in (np.float32, np.int32, np.int64)}
BOOL = {np.dtype(np.bool_)}


def dtype_check(allowed: set, *, what: str = "inputs"):
    """A preflight ``check`` accepting a node only when every input dtype is in ``allowed``.

    TFLite treats int8/uint8/int16 arithmetic as quantized and aborts without quantization
    parameters, so plain integer tensors of those types are refused here, at build time.
    """
    def check(node, ctx):
        bad = sorted({str(ctx.dtype(n)) for n in node.input if n and ctx.dtype(n) not in allowed})
        if bad:
            names = ", ".join(sorted(str(t) for t in allowed))
            return f"{'/'.join(bad)} {what} are not supported by the TFLite kernel (supported: {names})"
        return None
    return check


def all_checks(*checks):
    """Combine preflight checks: the first reason wins."""
    def check(node, ctx):
        for c in checks:
            reason = c(node, ctx)
            if reason:
                return reason
        return None
    return check
