"""Indexing: Slice (constant starts/ends/axes/steps, negative steps), Gather, Pad (constant, reflect, edge)."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..registry import COREML
from .common import text


def _slice_params(node, ctx):
    a = ctx.attrs(node)
    if ctx.opset < 10:
        return a["starts"], a["ends"], a.get("axes"), None
    get = [ctx.const(ctx.inp(node, i)) for i in range(1, 5)]
    return get[0], get[1], get[2], get[3]


def _slice_check(node, ctx):
    if ctx.opset >= 10 and any(ctx.inp(node, i) and ctx.const(node.input[i]) is None for i in range(1, 5)):
        return "starts/ends/axes/steps computed at run time"
    return None


@COREML.converts("Slice", since=1, check=_slice_check)
def slice_(node, ctx):
    """slice_by_index (bounds clamped at conversion; end_mask where a negative step runs past 0)"""
    starts, ends, axes, steps = _slice_params(node, ctx)
    shape = ctx.shape(node.input[0])
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else [int(v) % rank for v in axes]
    steps = [1] * len(starts) if steps is None else [int(v) for v in steps]
    begin, end, stride = [0] * rank, list(shape), [1] * rank
    end_mask = [False] * rank
    for ax, s, e, st in zip(axes, starts, ends, steps):
        b, en, st = slice(int(max(min(s, 2**62), -2**62)), int(max(min(e, 2**62), -2**62)), st).indices(shape[ax])
        begin[ax], end[ax], stride[ax] = b, en, st
        end_mask[ax] = en < 0
    ctx.set(ctx.out(), mb.slice_by_index(x=ctx.x(node.input[0]), begin=np.array(begin, np.int32),
                                         end=np.array([max(v, 0) for v in end], np.int32),
                                         stride=np.array(stride, np.int32), end_mask=end_mask, name=ctx.out()))


@COREML.converts("Gather", since=1)
def gather(node, ctx):
    """gather (constant negative indices are made positive)"""
    axis = int(ctx.attrs(node).get("axis", 0)) % ctx.rank(node.input[0])
    idx = ctx.const(node.input[1])
    if idx is not None:
        idx = np.where(idx < 0, idx + ctx.shape(node.input[0])[axis], idx).astype(np.int32)
    else:
        idx = ctx.x(node.input[1])
    ctx.set(ctx.out(), mb.gather(x=ctx.x(node.input[0]), indices=idx, axis=axis, name=ctx.out()))


PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}


def _pad_params(node, ctx):
    a = ctx.attrs(node)
    rank = ctx.rank(node.input[0])
    if ctx.opset < 11:
        pads, value = a["pads"], a.get("value", 0.0)
    else:
        pads = ctx.const(node.input[1])
        value = ctx.const(ctx.inp(node, 2))
        value = 0 if value is None else value.reshape(-1)[0]
        axes = ctx.const(ctx.inp(node, 3))
        if axes is not None:
            full = [0] * (2 * rank)
            for i, ax in enumerate(int(v) % rank for v in axes):
                full[ax], full[rank + ax] = int(pads[i]), int(pads[len(axes) + i])
            pads = full
    return [int(p) for p in pads], value


def _pad_check(node, ctx):
    mode = text(ctx.attrs(node).get("mode"), "constant")
    if mode not in PAD_MODES:
        return f"pad mode '{mode}'"
    if ctx.dtype(node.input[0]).kind != "f":
        return "integer Pad (Core ML pads float tensors)"
    if ctx.opset >= 11 and any(ctx.inp(node, i) and ctx.const(node.input[i]) is None for i in (1, 2, 3)):
        return "pads computed at run time"
    pads, _ = _pad_params(node, ctx)
    if any(p < 0 for p in pads):
        return "negative pads (cropping)"
    rank = len(pads) // 2
    if mode != "constant" and any(pads[i] or pads[rank + i] for i in range(max(0, rank - 2))):
        return f"{mode} padding beyond the last two axes"
    return None


@COREML.converts("Pad", since=2, check=_pad_check)
def pad(node, ctx):
    """pad (constant, reflect, replicate)"""
    pads, value = _pad_params(node, ctx)
    rank = len(pads) // 2
    mode = PAD_MODES[text(ctx.attrs(node).get("mode"), "constant")]
    mil = [v for i in range(rank) for v in (pads[i], pads[rank + i])]
    kw = {"constant_val": np.float32(value)} if mode == "constant" else {}
    if mode != "constant":
        mil = mil[-4:] if rank >= 2 else mil
    ctx.set(ctx.out(), mb.pad(x=ctx.x(node.input[0]), pad=np.array(mil, np.int32), mode=mode, **kw, name=ctx.out()))
