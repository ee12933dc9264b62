"""Full-integer int8 quantization of the TFLite IR.

Weights of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / TRANSPOSE_CONV: symmetric per output channel,
int8 in [-127, 127]; biases int32 with scale ``input_scale * weight_scale[c]``. Activations: per-tensor
asymmetric int8 from calibrated ranges (``ranges.py``). Ops whose kernels need equal input and output
parameters (reshape, pooling, concatenation, ...) get them, with a requantizing QUANTIZE where an input
differs; softmax/logistic/tanh get the fixed output parameters their kernels require. Any op without an
int8 kernel here, and any op the caller asks to keep (``keep_float``, by tensor name), runs in float
between DEQUANTIZE and QUANTIZE ops: a mixed graph LiteRT runs as is.

16x8 (``int16.py``): tensors named in ``wide`` (all activations with ``activations="int16"``) are int16,
and so are the ops reading or writing them where LiteRT has an int16 kernel (``INT16_OPS``, else float);
QUANTIZE requantizes between int8 and int16 where the two meet.

Model I/O stays float by default (QUANTIZE / DEQUANTIZE at the edges); ``io="int8"`` or ``"uint8"``
exposes quantized tensors with their parameters in the model.
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..ir import Graph, Op
from .int16 import FIXED16, HEADROOM, I8, I16, INPUT16, INT16_OPS, symmetric16

WEIGHTS = {"CONV_2D": (1, 0, 2, 0), "DEPTHWISE_CONV_2D": (1, 3, 2, 0), "FULLY_CONNECTED": (1, 0, 2, 0),
           "TRANSPOSE_CONV": (1, 0, 3, 2)}    # weight input, channel axis, bias input, activation input
GENERAL = {"ADD", "SUB", "MUL", "MEAN", "SUM", "SQUARED_DIFFERENCE", "RSQRT", "HARD_SWISH", "LEAKY_RELU",
           "RELU", "RELU6", "PRELU", "GELU", "ELU", "ABS", "BATCH_MATMUL", "ARG_MAX", "ARG_MIN"}
SAME = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "STRIDED_SLICE",
        "SLICE", "GATHER", "GATHER_ND", "PAD", "PADV2", "SPLIT", "SPLIT_V", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH",
        "TILE", "BROADCAST_TO", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "REDUCE_MAX", "REDUCE_MIN",
        "UNPACK", "REVERSE_V2"}
SAME_JOIN = {"CONCATENATION", "PACK", "MAXIMUM", "MINIMUM"}   # several inputs share the output's parameters
FIXED = {"SOFTMAX": (1 / 256, -128), "LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0),
         "LOG_SOFTMAX": (16 / 256, 127), "L2_NORMALIZATION": (1 / 128, 0)}
INT8_OPS = set(WEIGHTS) | GENERAL | SAME | SAME_JOIN | set(FIXED)
IO_TYPES = ("float", "int8", "uint8")
MAX_RANGE = 1e5          # activations beyond +-MAX_RANGE stay float
F32 = np.dtype(np.float32)


MIN_WEIGHT_SCALE = 1e-30     # a channel of weights under 1.3e-28 computes nothing float32 can keep


def weight_channel_scales(amax: np.ndarray) -> np.ndarray:
    """Symmetric int8 scales ``max|w| / 127`` per output channel. A channel whose scale would fall under
    ``MIN_WEIGHT_SCALE`` (all zeros, or PP-OCRv4 rec's channels of 3e-40 ... 5e-32 weights) gets 1.0 and
    quantizes to zeros: XNNPACK refuses a zero or subnormal weight scale, or a bias scale (the input's times
    this) that underflows, and leaves the op undelegated (FULLY_CONNECTED: the model fails to load); 1.0 keeps
    the bias representable (at 1e-9 a 16x8 bias overflowed int64 and flipped sign)."""
    scale = np.asarray(amax, np.float64) / 127.0
    return np.where(scale >= MIN_WEIGHT_SCALE, scale, 1.0).astype(np.float32)


def qparams(scale, zero_point, axis: int = 0) -> fb.QuantizationParametersT:
    qp = fb.QuantizationParametersT()
    qp.scale = [float(s) for s in np.atleast_1d(scale)]
    qp.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    qp.quantizedDimension = axis
    return qp


def asymmetric(lo: float, hi: float) -> tuple[float, int]:
    """int8 (scale, zero point) covering [lo, hi] (widened to include 0, as every kernel needs)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max((hi - lo) / 255.0, 1e-9)
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zp


def saturate(x: np.ndarray, dtype) -> np.ndarray:
    """Float values clipped into ``dtype``'s range and cast. int64's bounds are not float64 values (2**63 - 1
    rounds up to 2**63, which overflows the cast to the most negative int64): clip to the largest float64
    below them."""
    info = np.iinfo(dtype)
    lo, hi = np.float64(info.min), np.float64(info.max)
    if int(hi) > info.max:
        hi = np.nextafter(hi, 0.0)
    return np.clip(np.nan_to_num(x, nan=0.0), lo, hi).astype(dtype)


def quantize_array(x: np.ndarray, scale: float, zp: int, dtype=np.int8) -> np.ndarray:
    """``x`` on the integer grid (``scale``, ``zp``) of ``dtype``, saturated."""
    return saturate(np.round(x / scale) + zp, dtype)


def activation_ops(graph: Graph) -> list[Op]:
    """Ops that can run in int8 (candidates for keeping in float), in graph order."""
    return [op for op in graph.ops if op.opcode in INT8_OPS and any(
        graph.tensors[n].dtype == F32 and graph.tensors[n].data is None for n in op.outputs)]


class _Quantizer:
    def __init__(self, graph: Graph, ranges: dict, keep_float: set[str], io: str, float_opcodes=(),
                 float_origins=(), weight_scales=None, wide=(), all_wide=False, int16_ops=INT16_OPS, rounded=(),
                 dynamic=()):
        # ranges int8 cannot carry (masks of -1e9, overflowed sums) leave their ops in float: kernels derive
        # fixed-point multipliers from the scales, and absurd ones abort the interpreter at prepare time
        ranges = {n: r for n, r in ranges.items()
                  if np.all(np.isfinite(r)) and max(abs(r[0]), abs(r[1])) <= MAX_RANGE}
        self.g, self.ranges, self.io = graph, ranges, io
        self.float_opcodes, self.float_origins = set(float_opcodes), set(float_origins)
        self.keep = set(keep_float)
        self.rounded = set(rounded) - self.keep
        self.dynamic = set(dynamic)
        self.dynamic_ops: list[Op] = []
        self.wide, self.all_wide, self.int16_ops = set(wide), all_wide, set(int16_ops)
        self.weight_scales, self.model_weights = weight_scales or {}, 0   # a quantized model's own (qdq.py)
        self.rep: dict[str, str] = {}          # quantized activation tensor -> "int8" | "int16"
        self.cache: dict[tuple, str] = {}
        self.float_ops: list[Op] = []
        self.prefer: dict[str, tuple[float, int]] = {}
        users = graph.consumers()
        for op in graph.ops:           # a tensor feeding only a concatenation takes its parameters directly
            if op.opcode in SAME_JOIN and op.outputs[0] in ranges:
                for n in op.inputs:
                    if n in ranges and len(users.get(n, [])) == 1 and n not in graph.outputs:
                        self.prefer[n] = asymmetric(*ranges[op.outputs[0]])

    # --- parameters -----------------------------------------------------------------------------------
    def own(self, name: str, dt=I8) -> tuple[float, int]:
        t = self.g.tensors[name]
        if dt == I16:
            if t.data is not None:
                return symmetric16(t.data.min(initial=0.0), t.data.max(initial=0.0))
            return symmetric16(*self.ranges[name], HEADROOM)
        if t.data is not None:
            return asymmetric(t.data.min(initial=0.0), t.data.max(initial=0.0))
        return self.prefer.get(name) or asymmetric(*self.ranges[name])

    def quant_of(self, name: str, dt=I8) -> tuple[float, int] | None:
        qp = self.g.tensors[name].quant
        return (qp.scale[0], qp.zeroPoint[0]) if self.rep.get(name) == dt.name and qp is not None else None

    def set_int8(self, name: str, q: tuple[float, int], dt=I8) -> None:
        t = self.g.tensors[name]
        t.dtype, t.quant = dt, qparams(*q)
        self.rep[name] = dt.name

    # --- conversions (inserted before ``before``, shared per tensor and parameters) --------------------------
    def _insert(self, before: Op, opcode: str, src: str, dst: str) -> None:
        self.g.ops.insert(self.g.ops.index(before), Op(opcode, [src], [dst], None, before.origin))

    def as_int8(self, name: str, q: tuple[float, int], before: Op, dt=I8) -> str:
        t = self.g.tensors[name]
        if t.data is not None:
            key = (name, "const", q, dt.name)
            if key not in self.cache:
                new = self.g.add(f"{name}_q", t.shape, dt, quantize_array(t.data, *q, dt))
                self.g.tensors[new].quant = qparams(*q)
                self.cache[key] = new
            return self.cache[key]
        have = self.quant_of(name, dt)
        if have is not None and np.float32(have[0]) == np.float32(q[0]) and have[1] == q[1]:
            return name     # kernels (and XNNPACK) compare the stored float32 parameters exactly
        key = (name, "q", q, dt.name)
        if key not in self.cache:
            new = self.g.add(f"{name}_q", t.shape, dt)
            self.g.tensors[new].quant = qparams(*q)
            self.rep[new] = dt.name
            self._insert(before, "QUANTIZE", name, new)
            self.cache[key] = new
        return self.cache[key]

    def as_float(self, name: str, before: Op) -> str:
        if name not in self.rep:
            return name
        key = (name, "f")
        if key not in self.cache:
            new = self.g.add(f"{name}_f", self.g.tensors[name].shape, np.float32)
            self._insert(before, "DEQUANTIZE", name, new)
            self.cache[key] = new
        return self.cache[key]

    # --- per op ------------------------------------------------------------------------------------------
    def floating(self, op: Op) -> bool:
        acts = [n for n in op.inputs + op.outputs if n is not None and self.g.tensors[n].data is None]
        if op.opcode not in INT8_OPS or op.opcode in self.float_opcodes or op.origin in self.float_origins \
                or any(n in self.keep for n in acts):
            return True
        if self.width(op) == I16 and op.opcode not in self.int16_ops:
            return True   # no int16 kernel in LiteRT (int16.py): the ladder's next rung
        if op.opcode in ("SOFTMAX", "LOG_SOFTMAX") and self.reaches_output(op.outputs[0]):
            return True   # the kernel's fixed 1/256 output step would erase small probabilities; float is cheap
        floats = [n for n in acts if self.g.tensors[n].dtype == F32 or n in self.rep]
        if not floats or any(n not in self.ranges and n not in self.rep for n in floats):
            return True
        if any(t.data is not None and t.dtype == F32 and t.data.size and
               (not np.all(np.isfinite(t.data)) or np.abs(t.data).max() > MAX_RANGE)
               for t in (self.g.tensors[n] for n in op.inputs if n is not None)):
            return True   # an -inf mask, a NaN or a huge constant has no useful int8 value
        if op.opcode in WEIGHTS:
            w = self.g.tensors[op.inputs[WEIGHTS[op.opcode][0]]]
            return w.data is None or w.dtype != F32
        return False

    def reaches_output(self, name: str) -> bool:
        """Whether ``name`` is a graph output, directly or through reshape-like ops only."""
        users = self.g.consumers()
        seen = 0
        while name not in self.g.outputs and seen < 8:
            nxt = users.get(name, [])
            if len(nxt) != 1 or nxt[0].opcode not in ("RESHAPE", "SQUEEZE", "EXPAND_DIMS"):
                return False
            name, seen = nxt[0].outputs[0], seen + 1
        return name in self.g.outputs

    def is_float(self, name) -> bool:
        return name is not None and (self.g.tensors[name].dtype == F32 or name in self.rep)

    def width(self, op: Op):
        """int16 when the model is 16x8 or the op reads or writes a tensor the ladder widened, else int8.
        A lookup in a constant table (an embedding GATHER) stays int8: the table is a weight, 8-bit in 16x8,
        and at int16 it would double the model (MiniLM-L3: 0.43 of fp32 instead of 0.26)."""
        if op.opcode in ("GATHER", "GATHER_ND") and self.g.tensors[op.inputs[0]].data is not None:
            return I8
        if self.all_wide:
            return I16
        return I16 if any(n in self.wide for n in op.inputs + op.outputs if n is not None) else I8

    def hybrid(self, op: Op) -> bool:
        """Whether ``op`` is a FULLY_CONNECTED the ladder made dynamic (``dynamic``): int8 weights, float input
        and output, each input row rounded at run time by the kernel (XNNPACK's dynamically quantized one)."""
        if op.opcode != "FULLY_CONNECTED" or not (op.outputs[0] in self.dynamic or op.inputs[0] in self.dynamic):
            return False
        w = self.g.tensors[op.inputs[1]]
        return w.data is not None and w.dtype == F32 and op.origin not in self.float_origins

    def run_op(self, op: Op) -> None:
        if self.hybrid(op):
            op.inputs = [self.as_float(n, op) if n is not None else None for n in op.inputs]
            op.inputs[1], _ = self._weight(op.inputs[1], WEIGHTS[op.opcode][1], op.origin)
            op.options.asymmetricQuantizeInputs = True
            self.dynamic_ops.append(op)
            return
        if self.floating(op):
            op.inputs = [self.as_float(n, op) if n is not None else None for n in op.inputs]
            self.float_ops.append(op)
            self.round_after(op)
            return
        dt = self.width(op)
        if dt == I16 and op.opcode in ("ADD", "SUB"):
            # the schema's default pot_scale_int16=true asks for the power-of-two-scale kernel, which refuses
            # two inputs of different scales ("input1_shift == 0 || input2_shift == 0" at prepare: magika's
            # 16x8 model did not load); calibrated scales need the general int16 kernel
            if op.options is None:
                op.options = fb.AddOptionsT() if op.opcode == "ADD" else fb.SubOptionsT()
            op.options.potScaleInt16 = False
        if op.opcode in WEIGHTS:
            self._weighted(op, dt)
            return
        if op.opcode in SAME or op.opcode in SAME_JOIN:
            first = next(n for n in op.inputs if self.is_float(n))
            q = self.own(op.outputs[0], dt) if op.opcode in SAME_JOIN else (self.quant_of(first, dt)
                                                                            or self.own(first, dt))
            op.inputs = [self.as_int8(n, q, op, dt) if self.is_float(n) else n for n in op.inputs]
            outs = [(n, q) for n in op.outputs]
            if op.opcode == "CONCATENATION" and op.options is not None:
                # int8 concatenation takes no fused activation; the shared output range (calibrated after
                # the activation) already clamps every input to it when they are requantized
                op.options.fusedActivationFunction = fb.ActivationFunctionType.NONE
        else:
            fixed_in = INPUT16.get(op.opcode) if dt == I16 else None
            op.inputs = [self.as_int8(n, fixed_in or self.quant_of(n, dt) or self.own(n, dt), op, dt)
                         if self.is_float(n) else n for n in op.inputs]
            fixed = (FIXED16 if dt == I16 else FIXED).get(op.opcode)
            outs = [(n, fixed or self.own(n, dt)) for n in op.outputs
                    if self.g.tensors[n].dtype == F32]          # ARG_MAX and the like: int outputs stay
        for n, q in outs:
            if self.g.tensors[n].dtype == F32:
                self.set_int8(n, q, dt)

    def round_after(self, op: Op) -> None:
        """A quantized model rounds this float op's result (``rounded``): quantize it right here with the
        model's parameters, so every reader sees the rounded value (float readers through a DEQUANTIZE), as
        in the model's own QuantizeLinear -> DequantizeLinear."""
        for k, n in enumerate(op.outputs):
            t = self.g.tensors[n]
            if n not in self.rounded or n not in self.ranges or t.dtype != F32:
                continue
            raw = self.g.add(f"{n}_raw", t.shape, F32)
            op.outputs[k] = raw
            self.g.ops.insert(self.g.ops.index(op) + 1, Op("QUANTIZE", [raw], [n], None, op.origin))
            self.set_int8(n, self.own(n))

    def _weighted(self, op: Op, dt=I8) -> None:
        wi, axis, bi, ai = WEIGHTS[op.opcode]
        x = op.inputs[ai]
        q_in = self.quant_of(x, dt) or self.own(x, dt)
        op.inputs[ai] = self.as_int8(x, q_in, op, dt)
        w_name, w_scale = self._weight(op.inputs[wi], axis, op.origin)
        op.inputs[wi] = w_name
        if bi < len(op.inputs) and op.inputs[bi] is not None:
            b = self.g.tensors[op.inputs[bi]]
            scale = (q_in[0] * w_scale).astype(np.float64)
            bt = np.dtype(np.int64 if dt == I16 else np.int32)     # 16x8 kernels take int64 biases
            data = saturate(np.round(b.data.astype(np.float64) / scale), bt)
            name = self.g.add(f"{b.name}_{bt.name}", b.shape, bt, data)
            self.g.tensors[name].quant = qparams(scale, np.zeros_like(scale, dtype=np.int64), 0)
            op.inputs[bi] = name
        if op.opcode == "FULLY_CONNECTED" and op.options is not None:
            op.options.asymmetricQuantizeInputs = False
        out = op.outputs[0]
        self.set_int8(out, self.own(out, dt), dt)

    def _weight(self, name: str, axis: int, origin: str = "") -> tuple[str, np.ndarray]:
        key = (name, "w", axis)
        if key not in self.cache:
            w = self.g.tensors[name].data.astype(np.float32)
            q = None
            if origin in self.weight_scales:
                from .qdq import exact_weights
                q = exact_weights(w, self.weight_scales[origin], axis)
            if q is not None:
                scale = np.broadcast_to(self.weight_scales[origin], (w.shape[axis],)).astype(np.float32)
                self.model_weights += 1
            else:
                other = tuple(a for a in range(w.ndim) if a != axis)
                amax = np.max(np.abs(w), axis=other)
                scale = weight_channel_scales(amax)
                shape = [1] * w.ndim
                shape[axis] = -1
                q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
            new = self.g.add(f"{name}_int8", w.shape, np.int8, np.ascontiguousarray(q))
            self.g.tensors[new].quant = qparams(scale, np.zeros(len(scale), np.int64), axis)
            self.cache[key] = (new, scale)
        return self.cache[key]

    # --- graph edges ---------------------------------------------------------------------------------------
    def inputs(self) -> None:
        if self.io == "float":
            return
        for k, name in enumerate(list(self.g.inputs)):
            t = self.g.tensors[name]
            if t.dtype != F32 or name not in self.ranges:
                continue
            q = self.own(name)
            self.set_int8(name, q)
            if self.io == "uint8":
                u = self.g.add(f"{name}_uint8", t.shape, np.uint8)
                self.g.tensors[u].quant = qparams(q[0], q[1] + 128)
                self.g.ops.insert(0, Op("QUANTIZE", [u], [name], None, "input"))
                self.g.inputs[k] = u

    def outputs(self) -> None:
        for k, name in enumerate(list(self.g.outputs)):
            rep = self.rep.get(name)
            t = self.g.tensors[name]
            if self.io == "float" and rep is not None:
                new = self.g.add(f"{name}_float", t.shape, np.float32)
                self.g.ops.append(Op("DEQUANTIZE", [name], [new], None, "output"))
                self.g.outputs[k] = new
            elif self.io != "float" and (t.dtype == F32 or rep == "int16") and name in self.ranges:
                q = self.own(name)
                new = self.g.add(f"{name}_{self.io}", t.shape, np.dtype(self.io))
                self.g.tensors[new].quant = qparams(q[0], q[1] + (128 if self.io == "uint8" else 0))
                self.g.ops.append(Op("QUANTIZE", [name], [new], None, "output"))
                self.g.outputs[k] = new
            elif self.io == "uint8" and rep == "int8":
                q = self.quant_of(name)
                new = self.g.add(f"{name}_uint8", t.shape, np.uint8)
                self.g.tensors[new].quant = qparams(q[0], q[1] + 128)
                self.g.ops.append(Op("QUANTIZE", [name], [new], None, "output"))
                self.g.outputs[k] = new


def quantize_int8(graph: Graph, ranges: dict[str, tuple[float, float]], *, keep_float=(), io: str = "float",
                  float_opcodes=(), float_origins=(), weight_scales=None, wide=(), activations: str = "int8",
                  int16_ops=INT16_OPS, rounded=(), dynamic=()) -> dict:
    """Rewrite ``graph`` in place to full-integer int8; return counts for the build report.

    ``ranges``: calibrated (min, max) per float activation tensor. ``keep_float``: activation tensor names
    whose producer and consumers stay float (mixed precision). ``float_opcodes``: op types kept float
    wherever they occur; ``float_origins``: ops lowered from these ONNX nodes stay float. ``weight_scales``:
    per ONNX node, a quantized model's own weight scales, used where the weights lie on their grid.
    ``wide``: activation tensors (and the ops around them) in int16 (the mixed ladder's middle rung);
    ``activations="int16"``: every activation (16x8); ``int16_ops``: op types with an int16 kernel.
    ``rounded``: tensors a quantized model rounds; where their producer stays float, its result is rounded
    all the same (QUANTIZE, then DEQUANTIZE for float readers), so the float parts round as the model does.
    ``dynamic``: outputs of FULLY_CONNECTED ops made dynamic by the mixed ladder (int8 weights, activations
    rounded per row at run time, float output: ``hybrid``)."""
    if io not in IO_TYPES:
        raise ValueError(f"io must be one of {IO_TYPES}")
    graph.toposort()
    qz = _Quantizer(graph, ranges, set(keep_float), io, float_opcodes, float_origins, weight_scales, wide,
                    activations == "int16", int16_ops, rounded, dynamic)
    qz.inputs()
    for op in list(graph.ops):
        if op.opcode == "QUANTIZE" and op.origin == "input":
            continue
        qz.run_op(op)
    qz.outputs()
    graph.prune()
    graph.toposort()
    return {"int8_ops": sum(1 for op in graph.ops if op.opcode not in ("QUANTIZE", "DEQUANTIZE")
                            and op not in qz.float_ops and op not in qz.dynamic_ops),
            "dynamic_ops": len(qz.dynamic_ops),
            "float_ops": sorted({op.outputs[0] for op in qz.float_ops}),
            "float_opcodes": sorted({op.opcode for op in qz.float_ops}),
            "quantize_ops": graph.count("QUANTIZE"), "dequantize_ops": graph.count("DEQUANTIZE"),
            "model_weight_scales": qz.model_weights,
            "int16_ops": sum(1 for op in graph.ops if op.opcode not in ("QUANTIZE", "DEQUANTIZE")
                             and any(qz.rep.get(n) == "int16" for n in op.outputs))}
