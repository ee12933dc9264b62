"""ONNX -> TFLite conversion entry point."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx

from ...errors import ConversionError, EdgepackError
from . import ops  # noqa: F401  (registers converters)
from .context import Context
from .layout import absorb_io, optimize_layout
from .quantize import compress_weights
from .fold import fold_affine
from .patterns import fuse_patterns
from .passes import (dedupe_constants, fold_pad_into_conv, fold_transpose_into_fc, fuse_activations,
                     remove_identity_slices)
from .registry import TFLITE
from .writer import serialize


@dataclass
class TFLiteModel:
    data: bytes
    io: dict                      # bundle ``io``: {"inputs": [{"name", "perm"}], "outputs": [...]}
    stats: dict = field(default_factory=dict)


def preflight(model: onnx.ModelProto) -> None:
    """Raise UnsupportedOpsError naming every node the TFLite target cannot convert."""
    ctx = Context(model)
    TFLITE.preflight(model.graph, ctx.opsets, ctx)


def convert(model: onnx.ModelProto, *, optimize: bool = True, precision: str = "fp32") -> TFLiteModel:
    """Convert a normalized ONNX model (static shapes, see ``edgepack.model.load_model``) to TFLite.

    ``precision``: fp32, fp16 (fp16 weights) or int8-dynamic (int8 weights, hybrid kernels)."""
    ctx = Context(model)
    entries = TFLITE.preflight(model.graph, ctx.opsets, ctx)
    g = ctx.graph
    for inp in model.graph.input:
        g.inputs.append(ctx.output(inp.name))
    for node, entry in zip(model.graph.node, entries):
        ctx.node = node
        try:
            entry.fn(node, ctx)
        except EdgepackError:
            raise
        except Exception as exc:  # a converter bug: say where
            raise ctx.fail(f"{type(exc).__name__}: {exc}") from exc
        missing = [o for o in node.output if o and o not in g.tensors]
        if missing:
            raise ctx.fail(f"converter produced no tensor for output(s) {missing}")
    ctx.node = None
    for out in model.graph.output:
        name = out.name
        if name in g.inputs or g.tensors[ctx.tensor(name)].data is not None:
            copy = ctx.new(f"{name}_out", ctx.shape(name), ctx.dtype(name))
            ctx.reshape(name, ctx.shape(name), out=copy)
            name = copy
        g.outputs.append(name)
    transposes_before = g.count("TRANSPOSE")
    if optimize:
        fuse_patterns(g)
        remove_identity_slices(g)
        optimize_layout(g)
        fold_pad_into_conv(g)
        fold_transpose_into_fc(g)
        fold_affine(g)
        fuse_activations(g)
    dedupe_constants(g)
    in_perms, out_perms = absorb_io(g)
    compressed = compress_weights(g, precision)
    g.toposort()
    io = {"inputs": [{"name": i.name, "perm": p} for i, p in zip(model.graph.input, in_perms)],
          "outputs": [{"name": o.name, "perm": p} for o, p in zip(model.graph.output, out_perms)]}
    stats = {"ops": len(g.ops), "transpose_count": g.count("TRANSPOSE"),
             "transpose_count_unoptimized": transposes_before,
             "op_histogram": dict(Counter(op.opcode for op in g.ops).most_common()),
             "precision": precision, "compressed_weights": compressed}
    try:
        data = serialize(g, description=f"edgepack: {model.graph.name}")
    except Exception as exc:
        raise ConversionError(f"could not serialize the TFLite model: {exc}") from exc
    return TFLiteModel(data, io, stats)
