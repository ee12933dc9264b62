"""Conv and ConvTranspose (1-D and 2-D; grouped, depthwise, dilated, padded, strided, auto_pad)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import Act, choose_padding, pad_nhwc, spatial_pads


def _check_conv(node, ctx) -> str | None:
    rank = ctx.rank(node.input[0])
    if rank not in (3, 4):
        return f"{rank - 2}-D convolution is not supported (1-D and 2-D are)"
    if ctx.const(node.input[1]) is None:
        return "weights computed at run time are not supported; make them an initializer"
    if len(node.input) > 2 and node.input[2] and ctx.const(node.input[2]) is None:
        return "bias computed at run time is not supported"
    return None


def _as_2d(ctx, node):
    """(x as NCHW 4-D IR name, weights 4-D, attrs with 2-D lists, was_1d)."""
    a = ctx.attrs(node)
    x = ctx.tensor(node.input[0])
    w = ctx.const(node.input[1]).astype(np.float32)
    k = len(w.shape) - 2
    attrs = dict(a)
    if k == 1:
        n, c, width = ctx.shape(node.input[0])
        x = ctx.reshape(x, (n, c, 1, width))
        w = w[:, :, None, :]
        for key, fill in (("strides", 1), ("dilations", 1)):
            attrs[key] = [1, a.get(key, [fill])[0]]
        if "kernel_shape" in a:
            attrs["kernel_shape"] = [1, a["kernel_shape"][0]]
        if "pads" in a:
            p = a["pads"]
            attrs["pads"] = [0, p[0], 0, p[1]]
        if "output_padding" in a:
            attrs["output_padding"] = [0, a["output_padding"][0]]
        if "output_shape" in a:
            attrs["output_shape"] = [1, a["output_shape"][0]]
    return x, w, attrs, k == 1


def _bias(ctx, node, channels: int) -> str:
    b = ctx.const(ctx.inp(node, 2))
    b = np.zeros(channels, np.float32) if b is None else b.astype(np.float32)
    return ctx.constant(b, "bias")


def _finish(ctx, node, y_nhwc: str, was_1d: bool) -> None:
    out = node.output[0]
    if was_1d:
        n, h, w, c = ctx.graph.tensors[y_nhwc].shape
        y4 = ctx.new(f"{out}_4d", (n, c, h, w), np.float32)
        ctx.from_nhwc(y_nhwc, y4)
        ctx.reshape(y4, ctx.shape(out), out=ctx.output(out))
    else:
        ctx.from_nhwc(y_nhwc, ctx.output(out))


@TFLITE.converts("Conv", since=1, check=_check_conv)
def conv(node, ctx):
    """CONV_2D (grouped too) / DEPTHWISE_CONV_2D."""
    x, w, a, was_1d = _as_2d(ctx, node)
    n, cin, h, wd = ctx.graph.tensors[x].shape
    cout, cpg, kh, kw = w.shape
    group = int(a.get("group", 1))
    strides = list(a.get("strides", [1, 1]))
    dil = list(a.get("dilations", [1, 1]))
    pads = spatial_pads(a, (h, wd), (kh, kw), strides, dil)
    padding, explicit = choose_padding(pads, (h, wd), (kh, kw), strides, dil)
    xn = ctx.to_nhwc(x)
    if explicit:
        xn = pad_nhwc(ctx, xn, explicit)
    oh, ow = ctx.shape(node.output[0])[2:] if not was_1d else (1, ctx.shape(node.output[0])[2])
    out_shape = (n, oh, ow, cout)
    y = ctx.new(f"{node.output[0]}_nhwc", out_shape, np.float32)
    bias = _bias(ctx, node, cout)
    if group == cin and cpg == 1 and group > 1:
        opts = fb.DepthwiseConv2DOptionsT()
        opts.padding, opts.strideH, opts.strideW = padding, strides[0], strides[1]
        opts.dilationHFactor, opts.dilationWFactor = dil[0], dil[1]
        opts.depthMultiplier = cout // cin
        opts.fusedActivationFunction = Act.NONE
        wt = np.ascontiguousarray(w.reshape(cout, kh, kw).transpose(1, 2, 0)[None])  # [1, kh, kw, cout]
        ctx.emit("DEPTHWISE_CONV_2D", [xn, ctx.constant(wt, "weights"), bias], [y], opts)
    else:  # CONV_2D infers groups from the filter's input depth (cin / cpg)
        _conv2d(ctx, xn, w, bias, y, padding, strides, dil)
    _finish(ctx, node, y, was_1d)


def _conv2d(ctx, xn, w, bias, y, padding, strides, dil):
    opts = fb.Conv2DOptionsT()
    opts.padding, opts.strideH, opts.strideW = padding, strides[0], strides[1]
    opts.dilationHFactor, opts.dilationWFactor = dil[0], dil[1]
    opts.fusedActivationFunction = Act.NONE
    wt = np.ascontiguousarray(w.transpose(0, 2, 3, 1))  # OIHW -> OHWI
    ctx.emit("CONV_2D", [xn, ctx.constant(wt, "weights"), bias], [y], opts)


def _check_convt(node, ctx) -> str | None:
    reason = _check_conv(node, ctx)
    if reason:
        return reason
    return None


@TFLITE.converts("ConvTranspose", since=1, check=_check_convt)
def conv_transpose(node, ctx):
    """TRANSPOSE_CONV (+ SLICE/PAD for ONNX pads, output_padding; groups as a block-diagonal kernel)."""
    x, w, a, was_1d = _as_2d(ctx, node)
    n, cin, h, wd = ctx.graph.tensors[x].shape
    w = _dense_groups(w, int(a.get("group", 1)))
    _, cout, kh, kw = w.shape
    s = list(a.get("strides", [1, 1]))
    d = list(a.get("dilations", [1, 1]))
    if d != [1, 1]:  # dilate the kernel explicitly: TRANSPOSE_CONV has no dilation
        wd_ = np.zeros((cin, cout, (kh - 1) * d[0] + 1, (kw - 1) * d[1] + 1), np.float32)
        wd_[:, :, ::d[0], ::d[1]] = w
        w, kh, kw = wd_, wd_.shape[2], wd_.shape[3]
    full = ((h - 1) * s[0] + kh, (wd - 1) * s[1] + kw)    # VALID transposed-conv output
    final = ctx.shape(node.output[0])
    target = (1, final[2]) if was_1d else tuple(final[2:])
    begin = _begin_pads(a, full, target, (h, wd), (kh, kw), s)
    extends = any(t > f - b for t, f, b in zip(target, full, begin))  # output_padding past the data
    xn = ctx.to_nhwc(x)
    yfull = ctx.new(f"{node.output[0]}_full", (n, full[0], full[1], cout), np.float32)
    opts = fb.TransposeConvOptionsT()
    opts.padding, opts.strideH, opts.strideW = fb.Padding.VALID, s[0], s[1]
    opts.fusedActivationFunction = Act.NONE
    wt = np.ascontiguousarray(w.transpose(1, 2, 3, 0))  # [Cin, Cout, kh, kw] -> [Cout, kh, kw, Cin]
    out_shape = ctx.constant(np.asarray([n, full[0], full[1], cout], np.int32), "output_shape")
    bias = None if extends else _bias(ctx, node, cout)
    ctx.emit("TRANSPOSE_CONV", [out_shape, ctx.constant(wt, "weights"), xn, bias], [yfull], opts)
    y = _crop_or_pad(ctx, yfull, begin, target)
    if extends and ctx.const(ctx.inp(node, 2)) is not None:  # the padded rows hold the bias too
        yb = ctx.new(f"{y}_bias", ctx.graph.tensors[y].shape, np.float32)
        ctx.emit("ADD", [y, _bias(ctx, node, cout)], [yb], fb.AddOptionsT())
        y = yb
    _finish(ctx, node, y, was_1d)


def _dense_groups(w: np.ndarray, group: int) -> np.ndarray:
    """Grouped [Cin, Cout/g, kh, kw] weights as one block-diagonal [Cin, Cout, kh, kw] kernel."""
    if group == 1:
        return w
    cin, per, kh, kw = w.shape
    step = cin // group
    dense = np.zeros((cin, per * group, kh, kw), w.dtype)
    for g in range(group):
        dense[g * step:(g + 1) * step, g * per:(g + 1) * per] = w[g * step:(g + 1) * step]
    return dense


def _begin_pads(a, full, target, in_spatial, kernel, strides):
    """Rows/columns ONNX drops at the start of the VALID output (``pads`` or derived from auto_pad)."""
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if "output_shape" in a or auto in ("SAME_UPPER", "SAME_LOWER"):
        out_pad = list(a.get("output_padding", [0, 0]))
        total = [f + op - t for f, op, t in zip(full, out_pad, target)]
        return [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    return [b for b, _ in spatial_pads(a, in_spatial, kernel, strides, [1, 1])]


def _crop_or_pad(ctx, y, begin, target):
    """Drop ``begin`` rows/columns, keep ``target`` ones, zero-padding the end where data runs out."""
    n, fh, fw, c = ctx.graph.tensors[y].shape
    size = [n, min(target[0], fh - begin[0]), min(target[1], fw - begin[1]), c]
    if list(begin) != [0, 0] or size != [n, fh, fw, c]:
        out = ctx.new(f"{y}_crop", size, np.float32)
        ctx.emit("SLICE", [y, ctx.constant(np.asarray([0, begin[0], begin[1], 0], np.int32), "begin"),
                           ctx.constant(np.asarray(size, np.int32), "size")], [out])
        y = out
    extra = [(0, target[0] - size[1]), (0, target[1] - size[2])]
    if any(e for _, e in extra):
        y = pad_nhwc(ctx, y, extra)
    return y
