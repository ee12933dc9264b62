"""Pad: constant (PAD / PADV2) and reflect (MIRROR_PAD); edge is rejected."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE


def _mode(node, ctx) -> str:
    m = ctx.attrs(node).get("mode", b"constant")
    return m.decode() if isinstance(m, bytes) else m


def _check(node, ctx):
    if _mode(node, ctx) not in ("constant", "reflect"):
        return f"Pad mode '{_mode(node, ctx)}' has no TFLite equivalent (constant and reflect do)"
    if ctx.opset >= 11 and any(node.input[i] and ctx.const(node.input[i]) is None
                               for i in range(1, min(len(node.input), 4))):
        return "pads / value / axes computed at run time are not supported"
    return None


@TFLITE.converts("Pad", since=2, check=_check)
def pad(node, ctx):
    """PAD / PADV2 (constant value) / MIRROR_PAD REFLECT"""
    a = ctx.attrs(node)
    rank = ctx.rank(node.input[0])
    dt = ctx.dtype(node.input[0])
    if ctx.opset < 11:
        pads, value, axes = a["pads"], float(a.get("value", 0.0)), list(range(rank))
    else:
        pads = ctx.const(node.input[1]).tolist()
        v = ctx.const(ctx.inp(node, 2))
        value = 0 if v is None else v.ravel()[0]
        ax = ctx.const(ctx.inp(node, 3))
        axes = list(range(rank)) if ax is None else [int(x) % rank for x in ax]
    spec = np.zeros((rank, 2), np.int32)
    n = len(axes)
    for i, ax in enumerate(axes):
        spec[ax] = (pads[i], pads[i + n])
    if (spec < 0).any():
        raise ctx.fail("negative pads (cropping) are not supported")
    x, out = ctx.tensor(node.input[0]), ctx.output(node.output[0])
    paddings = ctx.constant(spec, "paddings")
    if _mode(node, ctx) == "reflect":
        opts = fb.MirrorPadOptionsT()
        opts.mode = fb.MirrorPadMode.REFLECT
        ctx.emit("MIRROR_PAD", [x, paddings], [out], opts)
    elif value == 0:
        ctx.emit("PAD", [x, paddings], [out])
    else:
        ctx.emit("PADV2", [x, paddings, ctx.constant(np.asarray(value, dt), "pad_value")], [out])
