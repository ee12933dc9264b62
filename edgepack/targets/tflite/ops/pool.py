"""Pooling: MaxPool, AveragePool (1-D and 2-D), GlobalAveragePool, GlobalMaxPool."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import Act, Padding, pad_nhwc, spatial_pads, tf_same_pads


def _geometry(node, ctx):
    a = ctx.attrs(node)
    shape = ctx.shape(node.input[0])
    k = list(a["kernel_shape"])
    n = len(k)
    strides = list(a.get("strides", [1] * n))
    pads = spatial_pads(a, shape[2:], k, strides, [1] * n)
    if a.get("ceil_mode", 0):  # extra end padding so floor division gives ONNX's ceil output size
        out = ctx.shape(node.output[0])[2:]
        pads = [(b, max(e, (o - 1) * s + kk - i - b)) for (b, e), o, s, kk, i in zip(pads, out, strides, k, shape[2:])]
    return k, strides, pads


def _check_pool(node, ctx):
    a = ctx.attrs(node)
    if len(a.get("kernel_shape", [])) not in (1, 2):
        return "only 1-D and 2-D pooling is supported"
    if any(d != 1 for d in a.get("dilations", [])):
        return "dilated pooling is not supported"
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        return "MaxPool indices output is not supported"
    return None


def _pool(node, ctx, opcode: str):
    k, strides, pads = _geometry(node, ctx)
    x = ctx.tensor(node.input[0])
    shape = ctx.shape(node.input[0])
    if len(k) == 1:  # [N, C, W] -> [N, C, 1, W]
        x = ctx.reshape(x, (shape[0], shape[1], 1, shape[2]))
        k, strides, pads = [1, k[0]], [1, strides[0]], [(0, 0), pads[0]]
    spatial = ctx.graph.tensors[x].shape[2:]
    include_pad = opcode == "AVERAGE_POOL_2D" and ctx.attrs(node).get("count_include_pad", 0)
    padding = Padding.VALID
    rescale = None
    xn = ctx.to_nhwc(x)
    if any(b or e for b, e in pads):
        if pads == tf_same_pads(spatial, k, strides, [1, 1]) and not include_pad:
            padding = Padding.SAME          # TFLite SAME excludes padding from averages, and max ignores it
        else:
            low = float(np.finfo(np.float32).min)
            xn = pad_nhwc(ctx, xn, pads, value=low if opcode == "MAX_POOL_2D" else 0.0)
            if opcode == "AVERAGE_POOL_2D" and not include_pad:
                rescale = _valid_fraction(spatial, k, strides, pads)
    opts = fb.Pool2DOptionsT()
    opts.padding, opts.strideH, opts.strideW = padding, strides[0], strides[1]
    opts.filterHeight, opts.filterWidth = k[0], k[1]
    opts.fusedActivationFunction = Act.NONE
    out = node.output[0]
    oshape = ctx.shape(out)
    o4 = oshape if len(oshape) == 4 else (oshape[0], oshape[1], 1, oshape[2])
    y = ctx.new(f"{out}_nhwc", (o4[0], o4[2], o4[3], o4[1]), ctx.dtype(out))
    ctx.emit(opcode, [xn], [y], opts)
    if rescale is not None:  # average over the in-bounds part of each window only
        y0, y = y, ctx.new(f"{out}_nhwc_x", (o4[0], o4[2], o4[3], o4[1]), ctx.dtype(out))
        ctx.emit("MUL", [y0, ctx.constant((1.0 / rescale)[None, :, :, None].astype(np.float32), "avg_scale")], [y],
                 fb.MulOptionsT())
    if len(oshape) == 4:
        ctx.from_nhwc(y, ctx.output(out))
    else:
        y4 = ctx.new(f"{out}_4d", o4, ctx.dtype(out))
        ctx.from_nhwc(y, y4)
        ctx.reshape(y4, oshape, out=ctx.output(out))


def _valid_fraction(spatial, k, strides, pads) -> np.ndarray:
    """Per output position, the fraction of the pooling window that lies inside the unpadded input."""
    mask = np.pad(np.ones(spatial, np.float64), pads)
    oh = (mask.shape[0] - k[0]) // strides[0] + 1
    ow = (mask.shape[1] - k[1]) // strides[1] + 1
    frac = np.empty((oh, ow))
    for i in range(oh):
        for j in range(ow):
            r, c = i * strides[0], j * strides[1]
            frac[i, j] = mask[r:r + k[0], c:c + k[1]].mean()
    return frac


@TFLITE.converts("MaxPool", since=1, check=_check_pool)
def max_pool(node, ctx):
    """MAX_POOL_2D (explicit pads as PADV2 with the lowest float; ceil_mode via end padding)"""
    _pool(node, ctx, "MAX_POOL_2D")


@TFLITE.converts("AveragePool", since=1, check=_check_pool)
def average_pool(node, ctx):
    """AVERAGE_POOL_2D (SAME pads natively; other pads explicit, rescaled when count_include_pad=0)"""
    _pool(node, ctx, "AVERAGE_POOL_2D")


def _global(node, ctx, opcode: str):
    rank = ctx.rank(node.input[0])
    opts = fb.ReducerOptionsT()
    opts.keepDims = True
    axes = ctx.constant(np.arange(2, rank, dtype=np.int32), "axes")
    ctx.emit(opcode, [ctx.tensor(node.input[0]), axes], [ctx.output(node.output[0])], opts)


@TFLITE.converts("GlobalAveragePool", since=1)
def global_average_pool(node, ctx):
    """MEAN over the spatial axes (keep_dims; layout-agnostic)"""
    _global(node, ctx, "MEAN")


@TFLITE.converts("GlobalMaxPool", since=1)
def global_max_pool(node, ctx):
    """REDUCE_MAX over the spatial axes (keep_dims; layout-agnostic)"""
    _global(node, ctx, "REDUCE_MAX")

