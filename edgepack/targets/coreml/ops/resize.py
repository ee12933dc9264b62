"""Resize / Upsample on the last two axes of N C H W tensors: nearest (integer scales) and linear."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..registry import COREML
from .common import text

# ONNX coordinate_transformation_mode -> (align_corners, half_pixel_centers) of upsample_bilinear
LINEAR_MODES = {"half_pixel": (False, True), "pytorch_half_pixel": (False, True), "asymmetric": (False, False),
                "align_corners": (True, False)}
# nearest modes whose integer upscaling picks floor(out / scale): the only ones upsample_nearest_neighbor has
NEAREST_OK = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
              ("pytorch_half_pixel", "round_prefer_floor"), ("tf_half_pixel_for_nn", "round_prefer_floor"),
              ("half_pixel", "round_prefer_ceil"), ("asymmetric", "round_prefer_floor")}


def _modes(node, ctx):
    a = ctx.attrs(node)
    mode = text(a.get("mode"), "nearest")
    default_ct = "asymmetric" if node.op_type == "Upsample" or ctx.opset < 11 else "half_pixel"
    return mode, text(a.get("coordinate_transformation_mode"), default_ct), \
        text(a.get("nearest_mode"), "round_prefer_floor" if ctx.opset >= 11 else "floor")


def _scales(node, ctx):
    ins, out = ctx.shape(node.input[0]), ctx.shape(node.output[0])
    given = None
    for i in ((2,) if ctx.opset >= 11 and node.op_type == "Resize" else (1,)):
        c = ctx.const(ctx.inp(node, i))
        given = c if c is not None and c.size else None
    if given is None and node.op_type == "Upsample" and ctx.opset < 9:
        given = np.array(ctx.attrs(node)["scales"], np.float32)
    if given is None:
        given = np.array(out, np.float64) / np.array(ins, np.float64)
    return [float(v) for v in given]


def _check(node, ctx):
    if ctx.rank(node.input[0]) != 4:
        return "Core ML resizes the last two axes of rank-4 tensors only"
    mode, ct, nearest = _modes(node, ctx)
    a = ctx.attrs(node)
    if a.get("antialias", 0) or a.get("axes"):
        return "antialias / axes"
    scales = _scales(node, ctx)
    if scales[0] != 1 or scales[1] != 1:
        return "resizing the batch or channel axis"
    if mode == "nearest":
        if (ct, nearest) not in NEAREST_OK or any(s != int(s) or s < 1 for s in scales[2:]):
            return f"nearest resize with {ct}/{nearest} at scales {scales[2:]} (integer upscales only)"
        return None
    if mode == "linear":
        if ct not in LINEAR_MODES:
            return f"linear resize with coordinate mode '{ct}'"
        ins, out = ctx.shape(node.input[0])[2:], ctx.shape(node.output[0])[2:]
        if any(abs(i * s - o) > 1e-6 for i, s, o in zip(ins, scales[2:], out)):
            return f"linear resize to a size that is not input x scale ({list(out)} from {list(ins)} x {scales[2:]})"
        if ct != "asymmetric" and any(o == 1 for o in out):
            return f"linear resize with '{ct}' to a single pixel (the coordinate formula is degenerate)"
        return None
    return f"resize mode '{mode}'"


def _convert(node, ctx):
    mode, ct, _ = _modes(node, ctx)
    sh, sw = _scales(node, ctx)[2:]
    x = ctx.x(node.input[0])
    if mode == "nearest":
        y = mb.upsample_nearest_neighbor(x=x, scale_factor_height=int(sh), scale_factor_width=int(sw),
                                         name=ctx.out())
        return ctx.set(ctx.out(), y)
    align, half = LINEAR_MODES[ct]
    out = ctx.shape(node.output[0])
    if align:   # align_corners maps ends to ends: the scale is implied by the sizes
        sh, sw = out[2] / ctx.shape(node.input[0])[2], out[3] / ctx.shape(node.input[0])[3]
    y = mb.upsample_bilinear(x=x, scale_factor_height=np.float32(sh), scale_factor_width=np.float32(sw),
                             align_corners=align, half_pixel_centers=half, name=ctx.out())
    ctx.set(ctx.out(), y)


@COREML.converts("Resize", since=10, check=_check)
def resize(node, ctx):
    """upsample_nearest_neighbor (integer scales) / upsample_bilinear (half_pixel, asymmetric, align_corners)"""
    _convert(node, ctx)


@COREML.converts("Upsample", since=7, check=_check)
def upsample(node, ctx):
    """as Resize (asymmetric coordinates)"""
    _convert(node, ctx)
