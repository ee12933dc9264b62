"""Weight compression of the TFLite IR: fp16 weights and dynamic-range int8 weights.

* ``fp16``: large float32 constants are stored as float16 and widened by a DEQUANTIZE op in front of
  their consumer (LiteRT/XNNPACK run such models with fp16 weights natively, fp32 math otherwise).
* ``int8-dynamic``: CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED weights become int8 with symmetric
  per-output-channel scales; the kernels quantize activations on the fly ("hybrid" kernels). Other large
  constants get the fp16 treatment.

Full-integer int8 (calibrated activations) is a separate pass (issue 3).
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from .ir import Graph, Op
from .quant.full_integer import weight_channel_scales

MIN_ELEMENTS = 1024          # smaller constants (biases, scalars, shapes) stay as they are
_WEIGHT_INPUT = {"CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 3), "FULLY_CONNECTED": (1, 0)}  # input, channel axis
# biases stay float32 at every size: XNNPACK's hybrid FULLY_CONNECTED refuses a bias computed by a DEQUANTIZE
# (MiniLM's 1,536-wide feed-forward bias as fp16: "failed to prepare", the int8-dynamic model did not load)
_BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
PRECISIONS = ("fp32", "fp16", "int8-dynamic")


def _fp16(graph: Graph, op: Op, i: int, done: dict) -> None:
    """One float16 copy and one DEQUANTIZE per constant, shared by all its consumers."""
    t = graph.tensors[op.inputs[i]]
    if (t.name, "fp16") not in done:
        half = graph.add(f"{t.name}_fp16", t.shape, np.float16, np.ascontiguousarray(t.data.astype(np.float16)))
        wide = graph.add(f"{t.name}_deq", t.shape, np.float32)
        graph.ops.insert(graph.ops.index(op), Op("DEQUANTIZE", [half], [wide], None, op.origin))
        done[(t.name, "fp16")] = wide
    op.inputs[i] = done[(t.name, "fp16")]


def _int8(graph: Graph, op: Op, i: int, axis: int, done: dict) -> None:
    t = graph.tensors[op.inputs[i]]
    if (t.name, axis) in done:
        op.inputs[i] = done[(t.name, axis)]
        if op.opcode == "FULLY_CONNECTED":
            op.options.asymmetricQuantizeInputs = True
        return
    w = t.data.astype(np.float32)
    other = tuple(a for a in range(w.ndim) if a != axis)
    scale = weight_channel_scales(np.max(np.abs(w), axis=other))
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    name = graph.add(f"{t.name}_int8", t.shape, np.int8, np.ascontiguousarray(q))
    qp = fb.QuantizationParametersT()
    qp.scale = scale.tolist()
    qp.zeroPoint = [0] * len(scale)
    qp.quantizedDimension = axis
    graph.tensors[name].quant = qp
    done[(t.name, axis)] = name
    op.inputs[i] = name
    if op.opcode == "FULLY_CONNECTED":
        op.options.asymmetricQuantizeInputs = True


def compress_weights(graph: Graph, precision: str, dynamic_convs: str = "all") -> dict:
    """Rewrite constant weights for ``precision``; return counts for the build report.

    At ``int8-dynamic``, FULLY_CONNECTED and CONV_2D weights become int8 and XNNPACK runs them on its
    dynamically quantized kernels; DEPTHWISE_CONV_2D weights are stored fp16 instead (XNNPACK does not take a
    dynamically quantized depthwise convolution: PP-OCR cls's 6 and rec's 10 ran on TFLite's reference
    kernels, 7 and 15 partitions). ``dynamic_convs="pointwise"`` keeps int8 only for 1x1 convolutions and
    stores wider kernels fp16 too: per-channel int8 weights lose the small taps of a wide kernel, as the
    tails of basic-pitch's constant-Q windows."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}")
    if dynamic_convs not in ("all", "pointwise"):
        raise ValueError("dynamic_convs must be 'all' or 'pointwise'")
    done = {"fp16": 0, "int8": 0}
    if precision == "fp32":
        return done
    made: dict = {}
    for op, i, t in _large_constants(graph):
        spec = _WEIGHT_INPUT.get(op.opcode)
        if precision == "int8-dynamic" and spec is not None and spec[0] == i and _dynamic(op, t, dynamic_convs):
            done["int8"] += (t.name, spec[1]) not in made
            _int8(graph, op, i, spec[1], made)
        else:
            done["fp16"] += (t.name, "fp16") not in made
            _fp16(graph, op, i, made)
    graph.prune()
    return done


def _dynamic(op: Op, w, dynamic_convs: str) -> bool:
    """Whether ``op``'s weights ``w`` go int8 at int8-dynamic (see ``compress_weights``)."""
    if op.opcode == "DEPTHWISE_CONV_2D":
        return False
    if op.opcode == "CONV_2D" and dynamic_convs == "pointwise":
        return tuple(w.shape[1:3]) == (1, 1)
    return True


def wide_dynamic_convs(graph: Graph) -> bool:
    """Whether ``int8-dynamic`` stores weights int8 that ``dynamic_convs="pointwise"`` would not (so the two
    differ): the same walk and rules as ``compress_weights``."""
    return any(_WEIGHT_INPUT.get(op.opcode, (None,))[0] == i and _dynamic(op, t, "all")
               and not _dynamic(op, t, "pointwise") for op, i, t in _large_constants(graph))


def half_float_constants(graph: Graph) -> int:
    """In a quantized graph, store the float32 constants that float ops still read (the weights of layers
    mixed precision kept in float, an embedding table gathered in float) as fp16 behind a DEQUANTIZE, as the
    fp16 precision does: XNNPACK takes fp16 weights natively and LiteRT dequantizes a constant once, when the
    model is prepared. Biases and constants under ``MIN_ELEMENTS`` stay. Returns how many were halved."""
    made: dict = {}
    for op, i, t in _large_constants(graph):
        if np.all(np.isfinite(t.data)) and np.abs(t.data).max(initial=0.0) <= np.finfo(np.float16).max:
            _fp16(graph, op, i, made)
    graph.prune()
    return len(made)


def _large_constants(graph: Graph):
    """(op, input index, tensor) for each float32 constant of ``MIN_ELEMENTS`` or more an op reads, biases
    aside, over the ops as they are now (the DEQUANTIZE ops the caller inserts are not visited). An input
    is read when its turn comes, so one the caller has just replaced is seen as replaced."""
    for op in list(graph.ops):
        if op.opcode == "DEQUANTIZE":     # reads fp16 / int8 data, never a float32 constant to compress
            continue
        for i, name in enumerate(op.inputs):
            t = graph.tensors.get(name) if name is not None else None
            if t is not None and t.data is not None and t.dtype == np.float32 and t.data.size >= MIN_ELEMENTS \
                    and _BIAS_INPUT.get(op.opcode) != i:
                yield op, i, t
