"""Pad, every mode: constant (PAD / PADV2), reflect (MIRROR_PAD), edge and wrap (GATHER per padded axis with
constant indices); negative pads crop (SLICE)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .slice import declared_dims, emit_slice


def _mode(node, ctx) -> str:
    m = ctx.attrs(node).get("mode", b"constant")
    return m.decode() if isinstance(m, bytes) else m


def pad_spec(node, ctx) -> tuple[np.ndarray, object]:
    """Pads as a [rank, 2] int array of (begin, end) per axis, and the constant fill value."""
    a = ctx.attrs(node)
    rank = ctx.rank(node.input[0])
    if ctx.opset < 11:
        pads, value, axes = list(a.get("pads", a.get("paddings", []))), a.get("value", 0.0), list(range(rank))
    else:
        pads = ctx.const(node.input[1]).ravel().tolist()
        v = ctx.const(ctx.inp(node, 2))
        value = 0 if v is None or v.size == 0 else v.ravel()[0]
        ax = ctx.const(ctx.inp(node, 3))
        axes = list(range(rank)) if ax is None else [int(x) % rank for x in np.ravel(ax)]
    spec = np.zeros((rank, 2), np.int64)
    for i, ax in enumerate(axes):
        spec[ax] = (pads[i], pads[i + len(axes)])
    return spec, value


def _check(node, ctx):
    mode = _mode(node, ctx)
    if mode not in ("constant", "reflect", "edge", "wrap"):
        return f"Pad mode '{mode}' is unknown (constant, reflect, edge and wrap are)"
    if ctx.opset >= 11 and any(ctx.inp(node, i) and ctx.const(node.input[i]) is None for i in (1, 2, 3)):
        return "pads / constant_value / axes computed at run time are not supported (fix them at export)"
    spec, _ = pad_spec(node, ctx)
    shape = declared_dims(ctx, node.input[0])
    if 0 in declared_dims(ctx, node.output[0]):
        return "pads that crop a tensor to nothing (a zero-sized output) are not supported"
    if None in shape:  # not known yet: the preflight after shape completion decides
        return None
    kept = [d - max(-b, 0) - max(-e, 0) for (b, e), d in zip(spec.tolist(), shape)]
    if mode == "reflect" and any(max(b, e) >= k for (b, e), k in zip(spec.tolist(), kept) if b > 0 or e > 0):
        return "reflect pads must be smaller than the padded dimension"
    if mode != "constant" and 0 in shape:
        return f"Pad mode '{mode}' of an empty tensor is not defined"
    return None


def _gather_axis(ctx, x: str, axis: int, index: np.ndarray, out: str) -> str:
    opts = fb.GatherOptionsT()
    opts.axis = axis
    ctx.emit("GATHER", [x, ctx.constant(index.astype(np.int32), "indices")], [out], opts)
    return out


def _pad_by_gather(ctx, x: str, spec: np.ndarray, mode: str, out: str) -> str:
    """edge / wrap (and reflect with crops): one GATHER per padded axis along precomputed source indices.

    Negative pads crop before the others pad, as onnxruntime does (it matters for wrap and reflect)."""
    shape = list(ctx.graph.tensors[x].shape)
    dt = ctx.graph.tensors[x].dtype
    axes = [ax for ax in range(len(shape)) if spec[ax].any()]
    for i, ax in enumerate(axes):
        lo, hi = max(-spec[ax, 0], 0), shape[ax] - max(-spec[ax, 1], 0)  # negative pads crop first
        dim = hi - lo
        pos = np.arange(-max(spec[ax, 0], 0), dim + max(spec[ax, 1], 0))
        if mode == "edge":
            src = np.clip(pos, 0, dim - 1)
        elif mode == "wrap":
            src = pos % dim
        else:  # reflect: mirror without repeating the border
            period = 2 * (dim - 1) if dim > 1 else 1
            src = np.abs(pos) % period
            src = np.where(src >= dim, period - src, src)
        shape[ax] = len(pos)
        y = out if i == len(axes) - 1 else ctx.new(f"{out}_ax{ax}", shape, dt)
        x = _gather_axis(ctx, x, ax, lo + src, y)
    return x


@TFLITE.converts("Pad", since=1, check=_check)
def pad(node, ctx):
    """PAD / PADV2 (constant) / MIRROR_PAD (reflect) / GATHER per axis (edge, wrap); negative pads crop (SLICE)"""
    spec, value = pad_spec(node, ctx)
    mode = _mode(node, ctx)
    x, out = ctx.tensor(node.input[0]), ctx.output(node.output[0])
    if not spec.any():
        ctx.reshape(x, ctx.shape(node.output[0]), out=out)
    elif mode in ("edge", "wrap") or (mode == "reflect" and (spec < 0).any()):
        _pad_by_gather(ctx, x, spec, mode, out)
    elif (spec < 0).any():  # constant: pad the positive part, then crop the negative one
        grown = _pad_constant(ctx, x, np.maximum(spec, 0), value, mode, None)
        shape = ctx.graph.tensors[grown].shape
        begin = [int(-min(b, 0)) for b, _ in spec.tolist()]
        end = [d - int(-min(e, 0)) for d, (_, e) in zip(shape, spec.tolist())]
        emit_slice(ctx, grown, begin, end, [1] * len(shape), out)
    else:
        _pad_constant(ctx, x, spec, value, mode, out)


def _pad_constant(ctx, x: str, spec: np.ndarray, value, mode: str, out: str | None) -> str:
    t = ctx.graph.tensors[x]
    if out is None:
        out = ctx.new(f"{x}_pad", [d + int(s.sum()) for d, s in zip(t.shape, spec)], t.dtype)
    paddings = ctx.constant(spec.astype(np.int32), "paddings")
    if mode == "reflect":
        opts = fb.MirrorPadOptionsT()
        opts.mode = fb.MirrorPadMode.REFLECT
        ctx.emit("MIRROR_PAD", [x, paddings], [out], opts)
    elif value == 0:
        ctx.emit("PAD", [x, paddings], [out])
    else:
        ctx.emit("PADV2", [x, paddings, ctx.constant(np.asarray(value, t.dtype), "pad_value")], [out])
    return out
