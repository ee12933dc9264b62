"""Conv and ConvTranspose (1-D, 2-D, 3-D; grouped, depthwise, dilated, strided, auto_pad)."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..registry import COREML
from .common import add_channel_bias, pad_type, text


def _conv_check(node, ctx):
    if ctx.rank(node.input[0]) not in (3, 4, 5):
        return f"rank {ctx.rank(node.input[0])} input (Core ML convolves 1-D, 2-D and 3-D NC... tensors)"
    if ctx.dtype(node.input[0]).kind != "f":
        return "integer convolution"
    return None


def _conv2_check(node, ctx):
    dilated = any(d != 1 for d in ctx.attrs(node).get("dilations", []))
    if dilated and ctx.const(node.input[1]) is None:
        return "dilated convolution with weights computed at run time"
    return _conv_check(node, ctx)


@COREML.converts("Conv", since=1, check=_conv2_check)
def conv(node, ctx):
    """conv (weights constant or computed; bias added separately when computed)"""
    a = ctx.attrs(node)
    spatial = ctx.rank(node.input[0]) - 2
    w = ctx.x(node.input[1])
    bias = ctx.inp(node, 2)
    const_bias = bias is not None and ctx.const(bias) is not None
    kw = dict(x=ctx.x(node.input[0]), weight=w, strides=np.array(a.get("strides", [1] * spatial), np.int32),
              dilations=np.array(a.get("dilations", [1] * spatial), np.int32), groups=int(a.get("group", 1)),
              **pad_type(a, spatial))
    if const_bias:
        kw["bias"] = ctx.const(bias).astype(np.float32)
    if bias is None or const_bias:
        return ctx.set(ctx.out(), mb.conv(**kw, name=ctx.out()))
    y = mb.conv(**kw, name=ctx.name("conv"))
    ctx.set(ctx.out(), add_channel_bias(ctx, y, bias, spatial + 2, ctx.out()))


def _transpose_pads(node, ctx, full):
    """Where the ONNX output window starts inside conv_transpose's unpadded output, per spatial dim."""
    a = ctx.attrs(node)
    spatial = len(full)
    out = ctx.shape(node.output[0])[2:]
    auto = text(a.get("auto_pad"), "NOTSET")
    if "output_shape" in a or auto in ("SAME_UPPER", "SAME_LOWER"):
        extra = list(a.get("output_padding", [0] * spatial))
        total = [f + e - o for f, e, o in zip(full, extra, out)]
        return [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    pads = list(a.get("pads", [0] * (2 * spatial)))
    return pads[:spatial]


def _convt_check(node, ctx):
    reason = _conv_check(node, ctx)
    if reason:
        return reason
    if ctx.const(node.input[1]) is None:
        return "ConvTranspose weights computed at run time"
    return None


@COREML.converts("ConvTranspose", since=1, check=_convt_check)
def conv_transpose(node, ctx):
    """conv_transpose (valid), then pad/slice to ONNX's pads, output_padding and output_shape, then bias"""
    a = ctx.attrs(node)
    in_shape, w = ctx.shape(node.input[0]), ctx.const(node.input[1]).astype(np.float32)
    spatial = len(in_shape) - 2
    strides = list(a.get("strides", [1] * spatial))
    dil = list(a.get("dilations", [1] * spatial))
    full = [s * (i - 1) + (k - 1) * d + 1 for s, i, k, d in zip(strides, in_shape[2:], w.shape[2:], dil)]
    y = mb.conv_transpose(x=ctx.x(node.input[0]), weight=w, pad_type="valid",
                          strides=np.array(strides, np.int32), dilations=np.array(dil, np.int32),
                          groups=int(a.get("group", 1)), name=ctx.name("convt"))
    out = ctx.shape(node.output[0])
    begin = _transpose_pads(node, ctx, full)
    grow = [max(0, b + o - f) for b, o, f in zip(begin, out[2:], full)]
    if any(grow):
        y = mb.pad(x=y, pad=np.array([0, 0, 0, 0] + [v for g in grow for v in (0, g)], np.int32),
                   mode="constant", constant_val=np.float32(0), name=ctx.name("grow"))
    bias = ctx.inp(node, 2)
    if any(begin) or any(o != f for o, f in zip(out[2:], full)):
        y = mb.slice_by_index(x=y, begin=np.array([0, 0] + begin, np.int32),
                              end=np.array(list(out[:2]) + [b + o for b, o in zip(begin, out[2:])], np.int32),
                              name=ctx.out() if bias is None else ctx.name("window"))
    elif bias is None:
        y = mb.identity(x=y, name=ctx.out())
    if bias is not None:
        y = add_channel_bias(ctx, y, bias, len(in_shape), ctx.out())
    ctx.set(ctx.out(), y)
