"""Resize (opset 10-19) and Upsample (opset 7-9).

Every ONNX resize is separable: along each resized axis, output position ``i`` is a weighted sum of a few
input positions (``_Taps``), computed here in numpy from the ONNX definition for this node's exact sizes.
RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR are emitted only when the TFLite kernel's own taps (replicated
in numpy, float32 like the kernel) equal the ONNX ones for some align_corners / half_pixel_centers flags;
anything else (cubic, antialias, tf_crop_and_resize, half_pixel_symmetric, nearest rounding TFLite does
not have, fractional scales, resized batch/channel axes) becomes per-axis GATHER taps with constant
weights, which is exact for every mode.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE

_CTMS = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
         "tf_half_pixel_for_nn", "tf_crop_and_resize"}
_NEAREST = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}


class _Refused(ValueError):
    """A node this converter cannot express; the message is the preflight reason."""


@dataclass
class _Spec:
    mode: str                   # nearest | linear | cubic
    ctm: str                    # coordinate_transformation_mode
    nearest: str                # nearest_mode, or "simple" (opset < 11: floor upsampling, ceil downsampling)
    cubic_a: float
    exclude_outside: bool
    extrapolation: float
    antialias: bool
    in_shape: tuple
    out_shape: tuple
    scales: list                # per axis, the scale the coordinate transform divides by
    roi: list                   # per axis (start, end), used by tf_crop_and_resize

    def resized(self) -> list[int]:
        return [a for a, (i, o, s, r) in enumerate(zip(self.in_shape, self.out_shape, self.scales, self.roi))
                if i != o or s != 1.0 or (self.ctm == "tf_crop_and_resize" and tuple(r) != (0.0, 1.0))]


@dataclass
class _Taps:
    """Along one axis: ``out[i] = sum_j weight[i, j] * in[index[i, j]] + bias[i]``."""
    index: np.ndarray           # [out, n] int, already clamped into the input
    weight: np.ndarray          # [out, n] float64
    bias: np.ndarray            # [out] float64 (tf_crop_and_resize extrapolation)

    def matrix(self, n_in: int) -> np.ndarray:
        m = np.zeros((len(self.index), n_in))
        np.add.at(m, (np.arange(len(self.index))[:, None], self.index), self.weight)
        return m


def _text(value, default: str) -> str:
    value = default if value is None else value
    return value.decode() if isinstance(value, bytes) else value


def _const_input(node, ctx, i: int):
    name = ctx.inp(node, i)
    if name is None:
        return None
    value = ctx.const(name)
    if value is None:
        raise _Refused("roi/scales/sizes computed at run time are not supported (make them constants at export)")
    return value if value.size else None


def _spec(node, ctx, legacy: bool) -> _Spec:
    a = ctx.attrs(node)
    x, out = node.input[0], node.output[0]
    in_shape, out_shape = tuple(ctx.shape(x)), tuple(ctx.shape(out))
    rank = len(in_shape)
    mode = _text(a.get("mode"), "nearest").lower()
    mode = "linear" if mode == "bilinear" else mode
    if legacy:  # Upsample-7 (attribute), Upsample-9 and Resize-10 (input 1): asymmetric, no other options
        scales = np.asarray(a["scales"]) if "scales" in a else _const_input(node, ctx, 1)
        spec = _Spec(mode, "asymmetric", "simple", -0.75, False, 0.0, False, in_shape, out_shape,
                     [float(s) for s in scales], [(0.0, 1.0)] * rank)
    else:
        axes = [int(v) % rank for v in a.get("axes", range(rank))]
        ctm = _text(a.get("coordinate_transformation_mode"), "half_pixel")
        roi = _const_input(node, ctx, 1) if ctm == "tf_crop_and_resize" else None  # unused by other modes
        scales, sizes = _const_input(node, ctx, 2), _const_input(node, ctx, 3)
        spec = _Spec(mode, ctm,
                     _text(a.get("nearest_mode"), "round_prefer_floor"), float(a.get("cubic_coeff_a", -0.75)),
                     bool(a.get("exclude_outside", 0)), float(a.get("extrapolation_value", 0.0)),
                     bool(a.get("antialias", 0)), in_shape, out_shape,
                     _scales(scales, sizes, axes, in_shape, _text(a.get("keep_aspect_ratio_policy"), "stretch")),
                     _roi(roi, axes, rank))
    _validate(spec, ctx.dtype(x))
    return spec


def _scales(scales, sizes, axes, in_shape, policy) -> list[float]:
    full = [1.0] * len(in_shape)
    if scales is not None:
        for ax, s in zip(axes, scales.tolist()):
            full[ax] = float(s)
        return full
    if sizes is None:
        raise _Refused("neither scales nor sizes is given")
    ratios = [int(n) / in_shape[ax] for ax, n in zip(axes, sizes.tolist())]
    if policy in ("not_larger", "not_smaller"):
        ratios = [min(ratios) if policy == "not_larger" else max(ratios)] * len(axes)
    for ax, r in zip(axes, ratios):
        full[ax] = r
    return full


def _roi(roi, axes, rank) -> list:
    full = [(0.0, 1.0)] * rank
    if roi is not None:
        roi = [float(v) for v in roi.tolist()]
        for i, ax in enumerate(axes):
            full[ax] = (roi[i], roi[len(axes) + i])
    return full


def _validate(spec: _Spec, dtype) -> None:
    if spec.mode not in ("nearest", "linear", "cubic"):
        raise _Refused(f"mode '{spec.mode}' is not a Resize mode (nearest, linear, cubic)")
    if spec.ctm not in _CTMS:
        raise _Refused(f"coordinate_transformation_mode '{spec.ctm}' is not supported")
    if spec.mode == "nearest" and spec.nearest not in _NEAREST | {"simple"}:
        raise _Refused(f"nearest_mode '{spec.nearest}' is not supported")
    if spec.mode == "nearest" and spec.antialias:
        raise _Refused("antialias applies to linear and cubic modes only")
    if spec.mode != "nearest" and np.dtype(dtype) != np.float32:
        raise _Refused(f"{spec.mode} resize of {np.dtype(dtype)} tensors is not supported (float32 only)")
    if any(o == 0 for o in spec.out_shape):
        raise _Refused("resizing to an empty tensor is not supported")


# --- the ONNX definition, one axis at a time --------------------------------------------------------------
def _source(spec: _Spec, axis: int) -> np.ndarray:
    """The input coordinate each output position maps to (float64, as the ONNX reference computes it)."""
    n_in, n_out, s = spec.in_shape[axis], spec.out_shape[axis], spec.scales[axis]
    y = np.arange(n_out, dtype=np.float64)
    width = s * n_in            # the ONNX reference's (float) resized length
    ctm = spec.ctm
    if ctm in ("half_pixel", "pytorch_half_pixel"):
        if ctm == "pytorch_half_pixel" and n_out == 1:
            return np.zeros(1)
        return (y + 0.5) / s - 0.5
    if ctm == "half_pixel_symmetric":
        return n_in / 2 * (1 - n_out / width) + (y + 0.5) / s - 0.5
    if ctm == "align_corners":
        return np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)
    if ctm == "asymmetric":
        return y / s
    if ctm == "tf_half_pixel_for_nn":
        return (y + 0.5) / s
    start, end = spec.roi[axis]  # tf_crop_and_resize
    if width == 1:
        return np.full(n_out, (end - start) * (n_in - 1) / 2 + start * (n_in - 1))
    return start * (n_in - 1) + y * (end - start) * (n_in - 1) / (width - 1)


def _cubic(d: np.ndarray, a: float) -> np.ndarray:
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def onnx_taps(spec: _Spec, axis: int) -> _Taps:
    """The ONNX Resize taps along ``axis``."""
    n_in, s = spec.in_shape[axis], spec.scales[axis]
    x = _source(spec, axis)
    if spec.mode == "nearest":
        pick = {"round_prefer_floor": np.ceil(x - 0.5), "round_prefer_ceil": np.floor(x + 0.5),
                "floor": np.floor(x), "ceil": np.ceil(x),
                "simple": np.floor(x) if s >= 1 else np.ceil(x)}[spec.nearest]
        index, weight = pick[:, None].astype(np.int64), np.ones((len(x), 1))
    else:
        base = np.floor(x)
        frac = x - base
        whole = frac == 0                      # ONNX measures from the left neighbour: ratio in (0, 1]
        base, frac = np.where(whole, base - 1, base), np.where(whole, 1.0, frac)
        radius = 1 if spec.mode == "linear" else 2
        shrink = min(s, 1.0) if spec.antialias else 1.0
        first = int(np.floor(-radius / shrink)) + 1
        offsets = np.arange(first, 2 - first)
        dist = shrink * (offsets[None, :] - frac[:, None])
        weight = np.clip(1 - np.abs(dist), 0, 1) if spec.mode == "linear" else _cubic(dist, spec.cubic_a)
        if spec.antialias:
            weight = weight / weight.sum(axis=1, keepdims=True)
        index = base.astype(np.int64)[:, None] + offsets[None, :]
        if spec.exclude_outside:
            weight = np.where((index < 0) | (index >= n_in), 0.0, weight)
            total = weight.sum(axis=1, keepdims=True)
            weight = weight / np.where(total == 0, 1.0, total)
    bias = np.zeros(len(x))
    if spec.ctm == "tf_crop_and_resize":
        outside = (x < 0) | (x > n_in - 1)
        weight = np.where(outside[:, None], 0.0, weight)
        bias = np.where(outside, spec.extrapolation, 0.0)
    return _Taps(np.clip(index, 0, n_in - 1), weight, bias)


# --- the TFLite kernels, replicated (float32 arithmetic as in reference_ops) -----------------------------
def _tfl_scale(n_in: int, n_out: int, align: bool) -> np.float32:
    if align and n_out > 1:
        return np.float32(n_in - 1) / np.float32(n_out - 1)
    return np.float32(n_in) / np.float32(n_out)


def tflite_taps(opcode: str, n_in: int, n_out: int, align: bool, half: bool) -> _Taps:
    """The taps RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR use along one axis for these flags."""
    scale = _tfl_scale(n_in, n_out, align)
    y = np.arange(n_out, dtype=np.float32)
    if opcode == "RESIZE_NEAREST_NEIGHBOR":
        v = (y + np.float32(0.5 if half else 0.0)) * scale
        idx = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) if align else np.floor(v)
        idx = np.clip(idx.astype(np.int64), 0, n_in - 1)
        return _Taps(idx[:, None], np.ones((n_out, 1)), np.zeros(n_out))
    src = (y + np.float32(0.5)) * scale - np.float32(0.5) if half else y * scale
    lo = np.maximum(np.floor(src).astype(np.int64), 0)
    hi = np.minimum(np.ceil(src).astype(np.int64), n_in - 1)
    frac = (src - lo).astype(np.float64)
    return _Taps(np.stack([lo, hi], 1), np.stack([1 - frac, frac], 1), np.zeros(n_out))


_FLAGS = [(False, False), (False, True), (True, False)]   # (align_corners, half_pixel_centers)


def native_flags(spec: _Spec, dtype) -> tuple[str, bool, bool] | None:
    """(opcode, align_corners, half_pixel_centers) when a TFLite resize op computes exactly this node."""
    if len(spec.in_shape) != 4 or spec.mode == "cubic" or np.dtype(dtype) != np.float32:
        return None
    if any(a in (0, 1) for a in spec.resized()):
        return None
    opcode = "RESIZE_NEAREST_NEIGHBOR" if spec.mode == "nearest" else "RESIZE_BILINEAR"
    want = [onnx_taps(spec, a) for a in (2, 3)]
    if any(t.bias.any() for t in want):
        return None
    for align, half in _FLAGS:
        if all(_same(tflite_taps(opcode, spec.in_shape[a], spec.out_shape[a], align, half), t, spec.in_shape[a],
                     spec.out_shape[a]) for a, t in zip((2, 3), want)):
            return opcode, align, half
    return None


def _same(have: _Taps, want: _Taps, n_in: int, n_out: int) -> bool:
    """Equal interpolation matrices, up to the float32 rounding of the kernel's source coordinates."""
    tol = 1e-5 + 4e-7 * max(n_in, n_out)
    return bool(np.allclose(have.matrix(n_in), want.matrix(n_in), rtol=0, atol=tol))


# --- emitting -------------------------------------------------------------------------------------------
def _emit_native(ctx, xn: str, flags, spec: _Spec, hint: str) -> str:
    opcode, align, half = flags
    n, c, oh, ow = spec.out_shape
    y = ctx.new(f"{hint}_nhwc", (n, oh, ow, c), ctx.graph.tensors[xn].dtype)
    opts = fb.ResizeBilinearOptionsT() if opcode == "RESIZE_BILINEAR" else fb.ResizeNearestNeighborOptionsT()
    opts.alignCorners, opts.halfPixelCenters = align, half
    ctx.emit(opcode, [xn, ctx.constant(np.asarray([oh, ow], np.int32), "size")], [y], opts)
    return y


def _along(shape_len: int, axis: int, values: np.ndarray, dtype) -> np.ndarray:
    return values.reshape([-1 if i == axis else 1 for i in range(shape_len)]).astype(dtype)


def _emit_taps(ctx, x: str, axis: int, taps: _Taps, hint: str, out: str | None = None) -> str:
    """GATHER per tap, scaled by its constant weights, summed (+ the extrapolation bias)."""
    t = ctx.graph.tensors[x]
    shape = list(t.shape)
    shape[axis] = len(taps.index)
    cols = [j for j in range(taps.index.shape[1]) if taps.weight[:, j].any()] or [0]
    terms = []
    for j in cols:
        g = ctx.new(f"{hint}_g", shape, t.dtype)
        opts = fb.GatherOptionsT()
        opts.axis = axis
        ctx.emit("GATHER", [x, ctx.constant(taps.index[:, j].astype(np.int32), "indices")], [g], opts)
        if not np.all(taps.weight[:, j] == 1):
            gw = ctx.new(f"{hint}_w", shape, t.dtype)
            ctx.emit("MUL", [g, ctx.constant(_along(len(shape), axis, taps.weight[:, j], t.dtype), "weights")], [gw],
                     fb.MulOptionsT())
            g = gw
        terms.append(g)
    if taps.bias.any():
        terms.append(ctx.constant(_along(len(shape), axis, taps.bias, t.dtype), "extrapolation"))
    acc = terms[0]
    for term in terms[1:]:
        total = ctx.new(f"{hint}_sum", shape, t.dtype)
        ctx.emit("ADD", [acc, term], [total], fb.AddOptionsT())
        acc = total
    if out is not None:  # the op just emitted produced ``acc``: let it write ``out`` instead
        ctx.graph.ops[-1].outputs[0] = out
        del ctx.graph.tensors[acc]
        acc = out
    return acc


def _resize(node, ctx, legacy: bool) -> None:
    try:
        spec = _spec(node, ctx, legacy)
    except _Refused as exc:
        raise ctx.fail(str(exc)) from None
    x, out = ctx.tensor(node.input[0]), node.output[0]
    axes = spec.resized()
    rank = len(spec.in_shape)
    if not axes:
        ctx.reshape(x, spec.out_shape, out=ctx.output(out))
        return
    if rank in (3, 4, 5) and min(axes) >= 2:  # spatial only: channels-last, where the neighbours run
        xn = ctx.to_nhwc(x)
        flags = native_flags(spec, ctx.dtype(node.input[0]))
        if flags is not None:
            y = _emit_native(ctx, xn, flags, spec, out)
        else:
            y = xn
            for a in axes:
                y = _emit_taps(ctx, y, a - 1, onnx_taps(spec, a), out)
        ctx.from_nhwc(y, ctx.output(out))
        return
    y = x
    for i, a in enumerate(axes):
        y = _emit_taps(ctx, y, a, onnx_taps(spec, a), out, ctx.output(out) if i == len(axes) - 1 else None)


def _check(legacy: bool):
    def check(node, ctx):
        try:
            _spec(node, ctx, legacy)
        except _Refused as exc:
            return str(exc)
        return None
    return check


@TFLITE.converts("Resize", since=11, check=_check(False))
def resize(node, ctx):
    """RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR where they match exactly, else GATHER taps (all modes)"""
    _resize(node, ctx, legacy=False)


@TFLITE.converts("Resize", since=10, check=_check(True))
def resize_10(node, ctx):
    """RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR where they match exactly, else GATHER taps (asymmetric)"""
    _resize(node, ctx, legacy=True)


@TFLITE.converts("Upsample", since=7, check=_check(True))
def upsample(node, ctx):
    """RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR where they match exactly, else GATHER taps (asymmetric)"""
    _resize(node, ctx, legacy=True)
