"""ONNX -> TFLite conversion entry point."""
from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx

from ...errors import ConversionError
from ..registry import convert_nodes
from . import ops  # noqa: F401  (registers converters)
from .context import Context
from .layout import absorb_io, optimize_layout
from .compress import compress_weights, half_float_constants
from .affine import fold_affine
from .quant.full_integer import quantize_int8
from .quant import speed
from .ir import Graph
from .patterns import fuse_patterns
from .passes import (block_thin_convs, dedupe_constants, fold_pad_into_conv, fold_transpose_into_fc, fuse_activations,
                     narrow_pads, relu01_as_min, remove_identity_slices, sink_reshapes)
from .registry import TFLITE
from .writer import serialize


@dataclass
class TFLiteModel:
    data: bytes
    io: dict                      # bundle ``io``: {"inputs": [{"name", "perm"}], "outputs": [...]}
    stats: dict = field(default_factory=dict)
    graph: Graph | None = None    # the IR that was serialized (for reports and the layer debugger)


def preflight(model: onnx.ModelProto) -> None:
    """Raise UnsupportedOpsError naming every node the TFLite target cannot convert."""
    ctx = Context(model)
    TFLITE.preflight(model.graph, ctx.opsets, ctx)


@dataclass
class Lowered:
    """The optimized float graph of one model, ready to be finished at any precision (kept for int8
    calibration, mixed-precision retries and the layer debugger)."""
    graph: Graph
    io: dict
    stats: dict
    description: str
    _float: bytes | None = field(default=None, repr=False)

    def float_bytes(self) -> bytes:
        """The float model's flatbuffer (serialized once: calibration, ``auto`` and the debugger all run it)."""
        if self._float is None:
            self._float = _serialize(copy.deepcopy(self.graph), self.description)
        return self._float

    def activations(self) -> list[str]:
        """Float activation tensors (non-constant), the ones int8 calibration observes."""
        return [n for n, t in self.graph.tensors.items() if t.data is None and t.dtype == np.float32]

    def finish(self, precision: str = "fp32", *, ranges: dict | None = None, keep_float=(),
               io: str = "float", float_opcodes=(), float_origins=(), weight_scales=None, wide=(),
               int16_ops=None, rounded=(), dynamic=(), half_floats: bool = False,
               dynamic_convs: str = "all") -> TFLiteModel:
        """Serialize a copy at ``precision``; int8 and int16x8 need calibrated ``ranges`` (``quant/ranges.py``).
        ``wide``: int8 activation tensors raised to int16 (mixed precision); ``int16_ops``: override of the
        measured int16 kernel table (the probe); ``rounded``: tensors a quantized model rounds even where
        their producer stays float (``quant/qdq.py``); ``dynamic``: FULLY_CONNECTED outputs computed by the
        dynamically quantized kernel (mixed precision's ``dynamic`` rung, ``quant/ladder.py``); ``half_floats``:
        the float32 constants float ops still read are stored as fp16 (``compress.half_float_constants``);
        ``dynamic_convs``: at int8-dynamic, which convolutions get int8 weights (``compress.compress_weights``)."""
        g = copy.deepcopy(self.graph)
        stats = dict(self.stats, precision=precision)
        if precision in ("int8", "int16x8"):
            if ranges is None:
                raise ValueError(f"{precision} needs calibrated activation ranges")
            extra = {} if int16_ops is None else {"int16_ops": int16_ops}
            ranges, rewrites = speed.before(g, ranges, share=weight_scales is None)   # for XNNPACK
            if precision == "int8" and speed.ENABLED and weight_scales is None:    # not a model's own grids
                kept = set(keep_float) | set(wide)
                blocked = block_thin_convs(
                    g, "int8", ranges, skip=lambda op: "CONV_2D" in float_opcodes or op.origin in float_origins
                    or any(n in kept for n in (op.inputs[0], op.outputs[0])))
                rewrites.update(blocked_convs=blocked["convs"], blocked_weights_added=blocked["weights_added"])
            stats["quantization"] = quantize_int8(g, ranges, keep_float=keep_float, io=io,
                                                  float_opcodes=float_opcodes, float_origins=float_origins,
                                                  weight_scales=weight_scales, wide=wide,
                                                  activations="int16" if precision == "int16x8" else "int8",
                                                  rounded=rounded, dynamic=dynamic, **extra)
            stats["quantization"]["io"] = io
            speed.after(g, stats["quantization"], rewrites)
            if half_floats:
                stats["quantization"]["fp16_constants"] = half_float_constants(g)
        else:
            stats["blocked_convs"] = block_thin_convs(g, "float")
            stats["compressed_weights"] = compress_weights(g, precision, dynamic_convs)
        g.toposort()
        stats.update(ops=len(g.ops), transpose_count=g.count("TRANSPOSE"),
                     op_histogram=dict(Counter(op.opcode for op in g.ops).most_common()))
        return TFLiteModel(_serialize(g, self.description), self.io, stats, g)


def _serialize(g: Graph, description: str) -> bytes:
    try:
        return serialize(g, description=description)
    except Exception as exc:
        raise ConversionError(f"could not serialize the TFLite model: {exc}") from exc


def lower(model: onnx.ModelProto, *, optimize: bool = True, keep_weights: bool = False,
          rounded=frozenset()) -> Lowered:
    """Convert a normalized ONNX model (static shapes, see ``edgepack.model.load_model``) to the optimized
    float TFLite IR with its I/O layout table. ``keep_weights``: no constant scale is folded into weights
    (a quantized model's weights stay on its own grids, ``quant/qdq.py``); ``rounded``: the tensors that model
    rounds (no bias is folded across one of them, ``affine.fold_affine``)."""
    ctx = Context(model)
    entries = TFLITE.preflight(model.graph, ctx.opsets, ctx)
    g = ctx.graph
    for inp in model.graph.input:
        g.inputs.append(ctx.output(inp.name))
    convert_nodes(model.graph, entries, ctx, check=lambda node: _missing_outputs(node, g))
    for out in model.graph.output:
        name = out.name
        if name in g.inputs or g.tensors[ctx.tensor(name)].data is not None:
            copy_ = ctx.new(f"{name}_out", ctx.shape(name), ctx.dtype(name))
            ctx.reshape(name, ctx.shape(name), out=copy_)
            name = copy_
        g.outputs.append(name)
    transposes_before = g.count("TRANSPOSE")
    if optimize:
        fuse_patterns(g)
        remove_identity_slices(g)
        optimize_layout(g)
        fold_pad_into_conv(g)
        fold_transpose_into_fc(g)
        sink_reshapes(g)
        fold_affine(g, weights=not keep_weights, rounded=frozenset(rounded))
        fuse_activations(g)
        relu01_as_min(g)
        narrow_pads(g)
    dedupe_constants(g)
    in_perms, out_perms = absorb_io(g)
    g.toposort()
    io = {"inputs": [{"name": i.name, "perm": p} for i, p in zip(model.graph.input, in_perms)],
          "outputs": [{"name": o.name, "perm": p} for o, p in zip(model.graph.output, out_perms)]}
    return Lowered(g, io, {"transpose_count_unoptimized": transposes_before}, f"edgepack: {model.graph.name}")


def _missing_outputs(node: onnx.NodeProto, g: Graph) -> str | None:
    missing = [o for o in node.output if o and o not in g.tensors]
    return f"converter produced no tensor for output(s) {missing}" if missing else None


def convert(model: onnx.ModelProto, *, optimize: bool = True, precision: str = "fp32") -> TFLiteModel:
    """Convert a normalized ONNX model to TFLite at ``precision``: fp32, fp16 (fp16 weights) or
    int8-dynamic (int8 weights, hybrid kernels). Full-integer int8 needs calibration: see ``lower``,
    ``quant.ranges.observe`` and ``Lowered.finish``."""
    return lower(model, optimize=optimize).finish(precision)
