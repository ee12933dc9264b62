"""Normalization: BatchNormalization (inference, folded), InstanceNormalization, LayerNormalization, LRN."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import F32, all_checks, dtype_check
from .matmul import fully_connected


def _check_bn(node, ctx):
    if any(ctx.const(n) is None for n in node.input[1:5]):
        return "scale/bias/mean/var computed at run time are not supported"
    if ctx.attrs(node).get("training_mode", 0):
        return "training_mode=1 is not supported (export the model in inference mode)"
    return None


@TFLITE.converts("BatchNormalization", since=1, check=_check_bn)
def batch_norm(node, ctx):
    """MUL + ADD with per-channel constants (layout-agnostic)"""
    s, b, m, v = (ctx.const(n).astype(np.float64) for n in node.input[1:5])
    eps = float(ctx.attrs(node).get("epsilon", 1e-5))
    scale = s / np.sqrt(v + eps)
    shift = b - m * scale
    rank = ctx.rank(node.input[0])
    bshape = scale.shape + (1,) * (rank - 1 - scale.ndim)  # [C] per channel; [C, D1...] for spatial=0
    out, dt = node.output[0], np.float32
    y = ctx.new(f"{out}_scaled", ctx.shape(node.input[0]), dt)
    ctx.emit("MUL", [ctx.tensor(node.input[0]), ctx.constant(scale.reshape(bshape).astype(dt), "bn_scale")], [y],
             fb.MulOptionsT())
    ctx.emit("ADD", [y, ctx.constant(shift.reshape(bshape).astype(dt), "bn_shift")], [ctx.output(out)],
             fb.AddOptionsT())


def _normalize(ctx, x: str, axes, eps: float, out_hint: str, stats: list | None = None) -> str:
    """(x - mean) * rsqrt(var + eps) over ``axes`` with MEAN / SQUARED_DIFFERENCE / RSQRT."""
    shape = ctx.graph.tensors[x].shape
    red = tuple(1 if i in axes else d for i, d in enumerate(shape))
    opts = fb.ReducerOptionsT()
    opts.keepDims = True
    ax = ctx.constant(np.asarray(axes, np.int32), "axes")
    mean = ctx.new(f"{out_hint}_mean", red, np.float32)
    ctx.emit("MEAN", [x, ax], [mean], opts)
    sq = ctx.new(f"{out_hint}_sq", shape, np.float32)
    ctx.emit("SQUARED_DIFFERENCE", [x, mean], [sq])
    var = ctx.new(f"{out_hint}_var", red, np.float32)
    ctx.emit("MEAN", [sq, ax], [var], opts)
    ve = ctx.new(f"{out_hint}_ve", red, np.float32)
    ctx.emit("ADD", [var, ctx.constant(np.asarray(eps, np.float32))], [ve], fb.AddOptionsT())
    inv = ctx.new(f"{out_hint}_inv", red, np.float32)
    ctx.emit("RSQRT", [ve], [inv])
    centered = ctx.new(f"{out_hint}_c", shape, np.float32)
    ctx.emit("SUB", [x, mean], [centered], fb.SubOptionsT())
    normed = ctx.new(f"{out_hint}_n", shape, np.float32)
    ctx.emit("MUL", [centered, inv], [normed], fb.MulOptionsT())
    if stats is not None:
        stats += [mean, inv]
    return normed


def _affine(ctx, x: str, scale, bias, bshape, out: str) -> None:
    y = x
    if scale is not None:
        y = ctx.new(f"{out}_s", ctx.graph.tensors[x].shape, np.float32) if bias is not None else out
        ctx.emit("MUL", [x, ctx.constant(scale.astype(np.float32).reshape(bshape), "gamma")], [y], fb.MulOptionsT())
    if bias is not None:
        ctx.emit("ADD", [y, ctx.constant(bias.astype(np.float32).reshape(bshape), "beta")], [out], fb.AddOptionsT())
    if scale is None and bias is None:
        ctx.reshape(x, ctx.graph.tensors[x].shape, out=out)


def _check_consts(node, ctx):
    if any(n and ctx.const(n) is None for n in node.input[1:]):
        return "scale/bias computed at run time are not supported"
    return None


@TFLITE.converts("InstanceNormalization", since=6, check=_check_consts)
def instance_norm(node, ctx):
    """MEAN/SQUARED_DIFFERENCE/RSQRT over spatial axes, per-channel MUL + ADD"""
    rank = ctx.rank(node.input[0])
    eps = float(ctx.attrs(node).get("epsilon", 1e-5))
    out = node.output[0]
    normed = _normalize(ctx, ctx.tensor(node.input[0]), list(range(2, rank)), eps, out)
    c = ctx.shape(node.input[0])[1]
    _affine(ctx, normed, ctx.const(node.input[1]), ctx.const(node.input[2]), (c,) + (1,) * (rank - 2),
            ctx.output(out))


@TFLITE.converts("LayerNormalization", since=17, check=_check_consts)
def layer_norm(node, ctx):
    """MEAN/SQUARED_DIFFERENCE/RSQRT over the trailing axes from ``axis``, MUL + ADD (Mean/InvStdDev too)"""
    a = ctx.attrs(node)
    rank = ctx.rank(node.input[0])
    axis = int(a.get("axis", -1)) % rank
    out = node.output[0]
    stats: list = []
    normed = _normalize(ctx, ctx.tensor(node.input[0]), list(range(axis, rank)), float(a.get("epsilon", 1e-5)), out,
                        stats)
    shape = ctx.shape(node.input[0])[axis:]
    _affine(ctx, normed, ctx.const(node.input[1]), ctx.const(ctx.inp(node, 2)), shape, ctx.output(out))
    for name, value in zip(node.output[1:], stats):  # optional Mean and InvStdDev outputs
        if name:
            ctx.reshape(value, ctx.shape(name), out=ctx.output(name))


def _check_lrn(node, ctx):
    rank = ctx.rank(node.input[0])
    return None if 2 <= rank <= 5 else f"LRN on a rank-{rank} tensor is not supported (ranks 2 to 5 are)"


@TFLITE.converts("LRN", since=1, check=all_checks(dtype_check(F32), _check_lrn))
def lrn(node, ctx):
    """LOCAL_RESPONSE_NORMALIZATION (NHWC, odd size); even sizes and other ranks as a banded FULLY_CONNECTED"""
    a = ctx.attrs(node)
    size, alpha = int(a["size"]), float(a.get("alpha", 1e-4))
    bias, beta = float(a.get("bias", 1.0)), float(a.get("beta", 0.75))
    x, out = ctx.tensor(node.input[0]), node.output[0]
    rank = ctx.rank(node.input[0])
    xn = ctx.to_nhwc(x) if rank > 2 else x
    y = ctx.new(f"{out}_nhwc", ctx.graph.tensors[xn].shape, np.float32) if rank > 2 else ctx.output(out)
    if size % 2 and rank == 4:  # TFLite: x / (bias + alpha * sum over [c - r, c + r])^beta
        opts = fb.LocalResponseNormalizationOptionsT()
        opts.radius, opts.bias, opts.alpha, opts.beta = (size - 1) // 2, bias, alpha / size, beta
        ctx.emit("LOCAL_RESPONSE_NORMALIZATION", [xn], [y], opts)
    else:
        _lrn_banded(ctx, xn, size, alpha, bias, beta, y)
    if rank > 2:
        ctx.from_nhwc(y, ctx.output(out))


def _lrn_banded(ctx, xn: str, size: int, alpha: float, bias: float, beta: float, out: str) -> None:
    """ONNX's window [c - floor((size-1)/2), c + ceil((size-1)/2)] as a constant [C, C] band matrix."""
    shape = ctx.graph.tensors[xn].shape
    c = shape[-1]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    rows, cols = np.arange(c)[:, None], np.arange(c)[None, :]
    band = ((cols >= rows - lo) & (cols <= rows + hi)).astype(np.float32) * (alpha / size)
    sq = ctx.unary("SQUARE", xn, ctx.new(f"{out}_sq", shape, np.float32))
    den = ctx.new(f"{out}_den", shape, np.float32)
    fully_connected(ctx, sq, band, np.full(c, bias, np.float32), den, keep_dims=len(shape) > 2)
    inv = ctx.new(f"{out}_inv", shape, np.float32)
    ctx.emit("POW", [den, ctx.constant(np.asarray(-beta, np.float32), "beta")], [inv])
    ctx.emit("MUL", [xn, inv], [out], fb.MulOptionsT())
