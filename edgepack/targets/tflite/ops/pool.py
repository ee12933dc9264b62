"""Pooling: MaxPool, AveragePool, LpPool (1-D to 3-D), GlobalAveragePool, GlobalMaxPool, GlobalLpPool.

1-D and 2-D windows without dilation use MAX_POOL_2D / AVERAGE_POOL_2D (1-D through a size-1 height).
Dilated and 3-D windows are pooled one axis at a time: for each kernel tap a STRIDED_SLICE of the padded
input, combined with MAXIMUM or ADD (max and sum over a box are separable). Averages divide by the number
of taps the ONNX definition counts (padding included or not; never the ceil_mode overhang).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import Act, Padding, pad_nhwc, spatial_pads, tf_same_pads

MAX_TAPS = 64  # per axis, for the sliced (dilated / 3-D) form


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of a pooling window; taps sit at ``o * stride - begin + i * dilation``."""
    size: int
    kernel: int
    stride: int
    dilation: int
    begin: int
    end: int
    out: int

    @property
    def end_total(self) -> int:
        """End padding giving exactly ``out`` windows (ceil_mode overhang added, unused rows dropped)."""
        return max(0, (self.out - 1) * self.stride + (self.kernel - 1) * self.dilation + 1 - self.size - self.begin)

    def counts(self, include_pad: bool) -> np.ndarray:
        """Per output position, the taps an average divides by."""
        lo, hi = (-self.begin, self.size + self.end) if include_pad else (0, self.size)
        taps = (np.arange(self.out)[:, None] * self.stride - self.begin
                + np.arange(self.kernel)[None, :] * self.dilation)
        return ((taps >= lo) & (taps < hi)).sum(axis=1)


def _axes(node, ctx) -> list[_Axis]:
    a = ctx.attrs(node)
    shape, out = ctx.shape(node.input[0]), ctx.shape(node.output[0])
    k = list(a["kernel_shape"])
    n = len(k)
    strides, dil = list(a.get("strides", [1] * n)), list(a.get("dilations", [1] * n))
    pads = spatial_pads(a, shape[2:], k, strides, dil)
    return [_Axis(*v) for v in zip(shape[2:], k, strides, dil, [b for b, _ in pads], [e for _, e in pads], out[2:])]


def _check_pool(node, ctx):
    a = ctx.attrs(node)
    n = len(a.get("kernel_shape", []))
    if n not in (1, 2, 3):
        return f"{n}-D pooling is not supported (1-D to 3-D are)"
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        return "MaxPool's Indices output is not supported (export without return_indices)"
    sliced = n == 3 or any(d != 1 for d in a.get("dilations", []))
    if sliced and max(a["kernel_shape"]) > MAX_TAPS:
        return f"dilated/3-D pooling windows above {MAX_TAPS} taps per axis are not supported"
    if node.op_type == "LpPool" and int(a.get("p", 2)) < 1:
        return "LpPool needs p >= 1"
    return None


def _rescale(ctx, y: str, factor: np.ndarray, hint: str) -> str:
    """Multiply ``y`` by a constant (broadcast along the channel axis) unless it is all ones."""
    if np.all(factor == 1):
        return y
    t = ctx.graph.tensors[y]
    out = ctx.new(f"{hint}_scaled", t.shape, t.dtype)
    ctx.emit("MUL", [y, ctx.constant(factor.astype(np.float32), "pool_scale")], [out], fb.MulOptionsT())
    return out


def _divisor(axes: list[_Axis], include_pad: bool) -> np.ndarray:
    """Outer product of the per-axis counts, shaped [1, *spatial, 1] for an NHWC tensor."""
    total = np.ones(())
    for ax in axes:
        total = np.multiply.outer(total, ax.counts(include_pad))
    return total.reshape((1,) + total.shape + (1,)).astype(np.float64)


def _native(ctx, x: str, axes: list[_Axis], kind: str, include_pad: bool, hint: str) -> str:
    """MAX_POOL_2D / AVERAGE_POOL_2D on NCHW ``x`` (1-D as height 1); returns the NHWC result."""
    if len(axes) == 1:
        n, c, w = ctx.graph.tensors[x].shape
        x = ctx.reshape(x, (n, c, 1, w))
        axes = [_Axis(1, 1, 1, 1, 0, 0, 1)] + axes
    n, c = ctx.graph.tensors[x].shape[:2]
    spatial = [ax.size for ax in axes]
    k, s = [ax.kernel for ax in axes], [ax.stride for ax in axes]
    pads = [(ax.begin, ax.end) for ax in axes]
    same = (pads == tf_same_pads(spatial, k, s, [1, 1]) and all(ax.end_total == ax.end for ax in axes)
            and all(ax.out == -(-ax.size // ax.stride) for ax in axes))
    xn = ctx.to_nhwc(x)
    padding = Padding.VALID
    if any(b or e for b, e in pads) and same and (kind == "max" or (kind == "avg" and not include_pad)):
        padding = Padding.SAME   # TFLite SAME: max ignores the padding, averages exclude it
    elif any(ax.begin or ax.end_total for ax in axes):
        xn = pad_nhwc(ctx, xn, [(ax.begin, ax.end_total) for ax in axes], value=_pad_value(ctx, xn, kind))
    opts = fb.Pool2DOptionsT()
    opts.padding, opts.strideH, opts.strideW = padding, s[0], s[1]
    opts.filterHeight, opts.filterWidth = k[0], k[1]
    opts.fusedActivationFunction = Act.NONE
    y = ctx.new(f"{hint}_nhwc", (n, axes[0].out, axes[1].out, c), ctx.graph.tensors[xn].dtype)
    ctx.emit("MAX_POOL_2D" if kind == "max" else "AVERAGE_POOL_2D", [xn], [y], opts)
    if kind == "max" or padding == Padding.SAME:
        return y
    kvol = float(np.prod(k))   # VALID averages divide by the whole window
    if kind == "sum":
        return _rescale(ctx, y, np.asarray(kvol), hint)
    return _rescale(ctx, y, kvol / _divisor(axes, include_pad), hint)


def _sliced(ctx, x: str, axes: list[_Axis], kind: str, include_pad: bool, hint: str) -> str:
    """Pool NCHW ``x`` one spatial axis at a time with STRIDED_SLICE taps; returns the NHWC result."""
    y = ctx.to_nhwc(x)
    for i, ax in enumerate(axes, 1):
        if ax.begin or ax.end_total:
            spec = [(0, 0)] * len(axes)
            spec[i - 1] = (ax.begin, ax.end_total)
            y = pad_nhwc(ctx, y, spec, value=_pad_value(ctx, y, kind))
        y = _window(ctx, y, i, ax, "MAXIMUM" if kind == "max" else "ADD", hint)
    if kind == "avg":
        y = _rescale(ctx, y, 1.0 / _divisor(axes, include_pad), hint)
    return y


def _pad_value(ctx, x: str, kind: str):
    """Padding that never wins a max (the dtype's lowest value) and adds nothing to a sum."""
    dt = ctx.graph.tensors[x].dtype
    if kind != "max":
        return 0
    return float(np.finfo(dt).min) if dt.kind == "f" else int(np.iinfo(dt).min)


def _window(ctx, y: str, axis: int, ax: _Axis, combine: str, hint: str) -> str:
    t = ctx.graph.tensors[y]
    shape = list(t.shape)
    shape[axis] = ax.out
    acc = None
    for i in range(ax.kernel):
        begin, end, step = [0] * len(shape), list(t.shape), [1] * len(shape)
        begin[axis], end[axis], step[axis] = i * ax.dilation, i * ax.dilation + (ax.out - 1) * ax.stride + 1, ax.stride
        tap = ctx.new(f"{hint}_tap", shape, t.dtype)
        ctx.emit("STRIDED_SLICE", [y] + [ctx.constant(np.asarray(v, np.int32), n)
                                         for v, n in ((begin, "begin"), (end, "end"), (step, "strides"))],
                 [tap], fb.StridedSliceOptionsT())
        if acc is not None:
            both = ctx.new(f"{hint}_acc", shape, t.dtype)
            ctx.emit(combine, [acc, tap], [both], fb.AddOptionsT() if combine == "ADD" else None)
            tap = both
        acc = tap
    return acc


def _unary(ctx, opcode: str, x: str, hint: str, exponent: float | None = None) -> str:
    t = ctx.graph.tensors[x]
    y = ctx.new(f"{hint}_{opcode.lower()}", t.shape, t.dtype)
    if opcode == "POW":
        ctx.emit("POW", [x, ctx.constant(np.asarray(exponent, np.float32), "p")], [y])
    else:
        ctx.emit(opcode, [x], [y])
    return y


def _lp_pre(ctx, x: str, p: int, hint: str) -> str:
    """|x|^p, the summand of an Lp pool."""
    if p == 1:
        return _unary(ctx, "ABS", x, hint)
    if p == 2:
        return _unary(ctx, "SQUARE", x, hint)
    return _unary(ctx, "POW", _unary(ctx, "ABS", x, hint), hint, float(p))


def _pool(node, ctx, kind: str) -> None:
    axes = _axes(node, ctx)
    a = ctx.attrs(node)
    include_pad = bool(a.get("count_include_pad", 0))
    out = node.output[0]
    x = ctx.tensor(node.input[0])
    p = int(a.get("p", 2))
    if kind == "lp":
        x = _lp_pre(ctx, x, p, out)
    body = "sum" if kind == "lp" else kind
    if len(axes) <= 2 and all(ax.dilation == 1 for ax in axes):
        y = _native(ctx, x, axes, body, include_pad, out)
    else:
        y = _sliced(ctx, x, axes, body, include_pad, out)
    if kind == "lp" and p > 1:
        y = _unary(ctx, "SQRT", y, out) if p == 2 else _unary(ctx, "POW", y, out, 1.0 / p)
    _finish(ctx, y, out)


def _finish(ctx, y_nhwc: str, out: str) -> None:
    oshape = ctx.shape(out)
    if len(ctx.graph.tensors[y_nhwc].shape) == len(oshape):
        ctx.from_nhwc(y_nhwc, ctx.output(out))
        return
    n, _, w, c = ctx.graph.tensors[y_nhwc].shape       # 1-D pooled as [N, 1, W, C]
    y4 = ctx.new(f"{out}_4d", (n, c, 1, w), ctx.graph.tensors[y_nhwc].dtype)
    ctx.from_nhwc(y_nhwc, y4)
    ctx.reshape(y4, oshape, out=ctx.output(out))


@TFLITE.converts("MaxPool", since=1, check=_check_pool)
def max_pool(node, ctx):
    """MAX_POOL_2D (1-D/2-D; explicit pads as PADV2), MAXIMUM over STRIDED_SLICE taps (dilated, 3-D)"""
    _pool(node, ctx, "max")


@TFLITE.converts("AveragePool", since=1, check=_check_pool)
def average_pool(node, ctx):
    """AVERAGE_POOL_2D (1-D/2-D; SAME natively, else PAD + MUL by the counted taps), ADD of slices (dilated, 3-D)"""
    _pool(node, ctx, "avg")


@TFLITE.converts("LpPool", since=1, check=_check_pool)
def lp_pool(node, ctx):
    """|x|^p summed by AVERAGE_POOL_2D x window size (or ADD of slices), then the p-th root"""
    _pool(node, ctx, "lp")


def _global(node, ctx, opcode: str, p: int | None = None):
    x, out = ctx.tensor(node.input[0]), node.output[0]
    rank = ctx.rank(node.input[0])
    opts = fb.ReducerOptionsT()
    opts.keepDims = True
    axes = ctx.constant(np.arange(2, rank, dtype=np.int32), "axes")
    if p is None:
        ctx.emit(opcode, [x, axes], [ctx.output(out)], opts)
        return
    total = ctx.new(f"{out}_sum", ctx.shape(out), np.float32) if p > 1 else ctx.output(out)
    ctx.emit("SUM", [_lp_pre(ctx, x, p, out), axes], [total], opts)
    if p == 2:
        ctx.emit("SQRT", [total], [ctx.output(out)])
    elif p > 2:
        ctx.emit("POW", [total, ctx.constant(np.asarray(1.0 / p, np.float32), "p")], [ctx.output(out)])


@TFLITE.converts("GlobalAveragePool", since=1)
def global_average_pool(node, ctx):
    """MEAN over the spatial axes (keep_dims; layout-agnostic)"""
    _global(node, ctx, "MEAN")


@TFLITE.converts("GlobalMaxPool", since=1)
def global_max_pool(node, ctx):
    """REDUCE_MAX over the spatial axes (keep_dims; layout-agnostic)"""
    _global(node, ctx, "REDUCE_MAX")


@TFLITE.converts("GlobalLpPool", since=2)
def global_lp_pool(node, ctx):
    """SUM of |x|^p over the spatial axes (keep_dims), then the p-th root"""
    _global(node, ctx, "SUM", int(ctx.attrs(node).get("p", 2)))
