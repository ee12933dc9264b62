"""Float-IR rewrites that give the int8 pass ops XNNPACK runs in int8 (``speed.before`` applies them).

Each computes exactly what it replaces (in float, up to one rounding of a reciprocal):

* ``div_as_mul``: DIV(x, c) with a constant ``c`` -> MUL(x, 1 / c). TFLite has no int8 DIV, so every
  hard-swish written ``x * relu6(x + 3) / 6`` left the integer path (DEQUANTIZE, float DIV, QUANTIZE).
* ``leaky_max``: MAXIMUM(x, MUL(x, a)) with a constant 0 < a < 1 -> LEAKY_RELU(x, a): XNNPACK takes int8
  LEAKY_RELU, not int8 MAXIMUM of two activations.
* ``gathers_as_transposes``: a GATHER on the last axis whose constant indices are a channel shuffle (the
  layout pass writes ShuffleNet's shuffle that way) -> RESHAPE [rows, g, n], TRANSPOSE, RESHAPE back.
  XNNPACK takes neither int8 nor float GATHER (a partition break each), and takes both reshapes and the
  transpose.
* ``deconv_as_depth_to_space``: a TRANSPOSE_CONV whose kernel equals its stride (VALID: no overlap, no
  crop; DBNet heads upsample that way) -> a 1x1 CONV_2D to ``k * k * Cout`` channels and DEPTH_TO_SPACE.
  XNNPACK's int8 deconvolution ran PP-OCRv4 det's two 2x2/2 heads in 154 ms against 32 ms in fp32.
* ``avg_pool_as_depthwise``: a VALID AVERAGE_POOL_2D (explicit zero padding before it, or none) -> a
  DEPTHWISE_CONV_2D with weights 1 / (kh * kw) (windows up to 3x3), or MEAN when the window is the whole
  input: XNNPACK runs both in int8 (it has no int8 average pool).

* ``scalar_muls``: MUL by a scalar constant merged with a following one, and folded into the weights of
  the convolutions / fully-connected ops that read it (all its readers): hard-swish's ``/ 6`` and PP-OCRv4's
  learnable scale after it cost a pass over the tensor each.

* ``even_splits``: SPLIT_V into equal sizes -> SPLIT, which XNNPACK takes (YOLO's C2f splits its channels
  in two halves; SPLIT_V broke the delegated graph there, in fp32 and int8 alike).

int8 only (they hold for values inside the calibrated range, which is all int8 can carry):

* ``finite_max_pool_padding``: PADV2 with -inf (or the float minimum) feeding only MAX_POOL_2D pads with
  the input's calibrated minimum instead: int8 has no -inf, so the pad (and the pool) ran in float.
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..ir import Graph, Op
from ..passes import reshape_op

MAX_DW_WINDOW = 9     # XNNPACK's int8 depthwise with a 7x7 window ran 10.6 ms where fp32 took 0.05 ms


def _scalar(graph: Graph, name: str | None) -> float | None:
    t = graph.tensors.get(name) if name else None
    if t is None or t.data is None or t.dtype != np.float32 or t.data.size != 1:
        return None
    return float(t.data.ravel()[0])


def div_as_mul(graph: Graph) -> int:
    """DIV(x, c) with a constant, finite, non-zero float ``c`` -> MUL(x, 1 / c)."""
    done = 0
    for op in graph.ops:
        if op.opcode != "DIV" or len(op.inputs) != 2:
            continue
        c = graph.tensors[op.inputs[1]]
        if c.data is None or c.dtype != np.float32 or not c.data.size or not np.all(np.isfinite(c.data)) \
                or np.any(c.data == 0) or graph.tensors[op.inputs[0]].data is not None:
            continue
        opts = fb.MulOptionsT()
        opts.fusedActivationFunction = getattr(op.options, "fusedActivationFunction", 0) or 0
        op.opcode, op.options = "MUL", opts
        op.inputs[1] = graph.const((1.0 / c.data.astype(np.float64)).astype(np.float32), f"{c.name}_inv")
        done += 1
    graph.prune()
    return done


def leaky_max(graph: Graph) -> int:
    """MAXIMUM(x, x * a) with 0 < a < 1 (either operand order) -> LEAKY_RELU(x, alpha=a)."""
    prod = graph.producers()
    done = 0
    for op in graph.ops:
        if op.opcode != "MAXIMUM" or len(op.inputs) != 2:
            continue
        for x, m in (op.inputs, op.inputs[::-1]):
            mul = prod.get(m)
            if mul is None or mul.opcode != "MUL" or getattr(mul.options, "fusedActivationFunction", 0):
                continue
            a = _scalar(graph, mul.inputs[1]) if mul.inputs[0] == x else \
                _scalar(graph, mul.inputs[0]) if mul.inputs[1] == x else None
            if a is None or not 0 < a < 1 or graph.tensors[m].shape != graph.tensors[op.outputs[0]].shape:
                continue
            opts = fb.LeakyReluOptionsT()
            opts.alpha = a
            op.opcode, op.inputs, op.options = "LEAKY_RELU", [x], opts
            done += 1
            break
    graph.prune()
    return done


def _shuffle_groups(idx: np.ndarray) -> int | None:
    """g when ``idx`` is the channel shuffle of g groups: out[a * g + b] = in[b * n + a]."""
    c = idx.size
    for g in range(2, c):
        if c % g == 0:
            n = c // g
            if np.array_equal(idx, np.arange(c).reshape(g, n).T.ravel()):
                return g
    return None


def gathers_as_transposes(graph: Graph, ranges: dict | None = None) -> int:
    """Channel-shuffle GATHERs on the last axis -> RESHAPE, TRANSPOSE, RESHAPE; the new tensors get the
    input's calibrated range in ``ranges`` (the same values, rearranged)."""
    done = 0
    for op in list(graph.ops):
        if op.opcode != "GATHER" or getattr(op.options, "batchDims", 0):
            continue
        x, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        idx = graph.tensors[op.inputs[1]].data
        axis = getattr(op.options, "axis", 0) % max(len(x.shape), 1)
        if idx is None or x.data is not None or axis != len(x.shape) - 1 or idx.ndim != 1 \
                or x.shape != out.shape or idx.size != x.shape[-1]:
            continue
        g = _shuffle_groups(idx.astype(np.int64))
        if g is None:
            continue
        rows = int(np.prod(x.shape[:-1]))
        grouped = (rows, g, x.shape[-1] // g)
        a = graph.add(f"{x.name}_groups", grouped, x.dtype)
        b = graph.add(f"{x.name}_shuffled", (rows, grouped[2], g), x.dtype)
        if ranges is not None and x.name in ranges:
            ranges[a] = ranges[b] = ranges[x.name]
        at = graph.ops.index(op)
        graph.ops[at:at + 1] = [
            reshape_op(graph, x.name, a, op.origin),
            Op("TRANSPOSE", [a, graph.const(np.asarray([0, 2, 1], np.int32), "perm")], [b], None, op.origin),
            reshape_op(graph, b, out.name, op.origin)]
        done += 1
    graph.prune()
    return done


def deconv_as_depth_to_space(graph: Graph, ranges: dict | None = None) -> int:
    """TRANSPOSE_CONV with kernel == stride, VALID -> CONV_2D 1x1 + DEPTH_TO_SPACE (see the module docstring)."""
    done = 0
    for op in list(graph.ops):
        if op.opcode != "TRANSPOSE_CONV" or op.options is None:
            continue
        o = op.options
        w, x = graph.tensors[op.inputs[1]], graph.tensors[op.inputs[2]]
        bias = graph.tensors[op.inputs[3]] if len(op.inputs) > 3 and op.inputs[3] is not None else None
        out = graph.tensors[op.outputs[0]]
        if w.data is None or w.dtype != np.float32 or x.data is not None or len(x.shape) != 4 \
                or (bias is not None and bias.data is None):
            continue
        cout, kh, kw, cin = w.shape
        k = kh
        if not (kh == kw == o.strideH == o.strideW and k > 1 and o.padding == fb.Padding.VALID) \
                or out.shape != (x.shape[0], x.shape[1] * k, x.shape[2] * k, cout):
            continue
        w2 = np.ascontiguousarray(w.data.transpose(1, 2, 0, 3).reshape(k * k * cout, 1, 1, cin))
        b = np.zeros(cout, np.float32) if bias is None else bias.data.astype(np.float32)
        mid = graph.add(f"{out.name}_s2d", (x.shape[0], x.shape[1], x.shape[2], k * k * cout), np.float32)
        if ranges is not None and out.name in ranges:
            ranges[mid] = ranges[out.name]
        conv = fb.Conv2DOptionsT()
        conv.padding, conv.strideH, conv.strideW = fb.Padding.VALID, 1, 1
        conv.dilationHFactor = conv.dilationWFactor = 1
        conv.fusedActivationFunction = getattr(o, "fusedActivationFunction", 0) or 0
        d2s = fb.DepthToSpaceOptionsT()
        d2s.blockSize = k
        at = graph.ops.index(op)
        graph.ops[at:at + 1] = [
            Op("CONV_2D", [x.name, graph.const(w2, "weights"), graph.const(np.tile(b, k * k), "bias")], [mid], conv,
               op.origin),
            Op("DEPTH_TO_SPACE", [mid], [out.name], d2s, op.origin)]
        done += 1
    graph.prune()
    return done


def avg_pool_as_depthwise(graph: Graph, ranges: dict | None = None) -> int:
    """VALID AVERAGE_POOL_2D -> DEPTHWISE_CONV_2D with constant weights 1 / window (see the module docstring).
    The output keeps the input's range in ``ranges``, as the int8 pool kept its parameters (a global mean's
    own calibrated range is narrow and saturates on other inputs)."""
    done = 0
    for op in graph.ops:
        x = graph.tensors[op.inputs[0]] if op.opcode == "AVERAGE_POOL_2D" else None
        if x is None or op.options is None or op.options.padding != fb.Padding.VALID or len(x.shape) != 4 \
                or x.data is not None or x.dtype != np.float32:
            continue
        o = op.options
        kh, kw, c = o.filterHeight, o.filterWidth, x.shape[3]
        to_mean = (kh, kw) == x.shape[1:3] and not o.fusedActivationFunction
        if not to_mean and kh * kw > MAX_DW_WINDOW:
            continue
        if ranges is not None and x.name in ranges:
            ranges[op.outputs[0]] = ranges[x.name]
        done += 1
        if to_mean:                         # a global average: MEAN
            opts = fb.ReducerOptionsT()
            opts.keepDims = True
            op.opcode, op.options = "MEAN", opts
            op.inputs = [x.name, graph.const(np.asarray([1, 2], np.int32), "axes")]
            continue
        dw = fb.DepthwiseConv2DOptionsT()
        dw.padding, dw.strideH, dw.strideW = fb.Padding.VALID, o.strideH, o.strideW
        dw.dilationHFactor = dw.dilationWFactor = dw.depthMultiplier = 1
        dw.fusedActivationFunction = o.fusedActivationFunction
        w = np.full((1, kh, kw, c), 1.0 / (kh * kw), np.float32)
        op.opcode, op.options = "DEPTHWISE_CONV_2D", dw
        op.inputs = [x.name, graph.const(w, "weights"), graph.const(np.zeros(c, np.float32), "bias")]
    return done


def finite_max_pool_padding(graph: Graph, ranges: dict) -> int:
    """PADV2(x, pads, -inf) read only by MAX_POOL_2D -> PADV2(x, pads, min of x's range) (int8 only)."""
    users = graph.consumers()
    done = 0
    for op in graph.ops:
        if op.opcode != "PADV2" or len(op.inputs) < 3 or op.inputs[0] not in ranges:
            continue
        v = _scalar(graph, op.inputs[2])
        readers = users.get(op.outputs[0], [])
        if v is None or v > -1e30 or not readers or any(u.opcode != "MAX_POOL_2D" for u in readers) \
                or op.outputs[0] in graph.outputs:
            continue
        lo = min(float(ranges[op.inputs[0]][0]), 0.0)
        if lo == 0.0:      # a ReLU's output: zeros pad as well, and XNNPACK takes PAD (not int8 PADV2)
            op.opcode, op.inputs, op.options = "PAD", op.inputs[:2], fb.PadOptionsT()
        else:
            op.inputs[2] = graph.const(np.asarray(lo, np.float32).reshape(graph.tensors[op.inputs[2]].shape),
                                       "pad_value")
        ranges[op.outputs[0]] = (lo, ranges[op.inputs[0]][1])     # it saw the float minimum at calibration
        done += 1
    graph.prune()
    return done


_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def _scalar_mul(graph: Graph, op: Op) -> tuple[str, float] | None:
    """(x, c) when ``op`` is MUL(x, c) with a float scalar constant and no fused activation."""
    if op.opcode != "MUL" or len(op.inputs) != 2 or getattr(op.options, "fusedActivationFunction", 0):
        return None
    for x, c in (op.inputs, op.inputs[::-1]):
        v = _scalar(graph, c)
        if v is not None and np.isfinite(v) and graph.tensors[x].data is None \
                and graph.tensors[x].shape == graph.tensors[op.outputs[0]].shape:
            return x, v
    return None


def scalar_muls(graph: Graph) -> int:
    """Merge chained scalar MULs and fold scalar MULs into the weights of their readers (exact in float)."""
    done = 0
    changed = True
    while changed:
        changed = False
        users, prod = graph.consumers(), graph.producers()
        for op in graph.ops:
            found = _scalar_mul(graph, op)
            if found is None or op.outputs[0] in graph.outputs:
                continue
            x, c = found
            readers = users.get(op.outputs[0], [])
            first = prod.get(x)
            inner = _scalar_mul(graph, first) if first is not None else None
            if inner is not None and len(users.get(x, [])) == 1 and x not in graph.outputs:
                op.inputs = [inner[0], graph.const(np.float32(inner[1] * c), "scale")]
            elif readers and all(r.opcode in _WEIGHTED and r.inputs[0] == op.outputs[0] and op.outputs[0] not in
                                 r.inputs[1:] and graph.tensors[r.inputs[1]].data is not None for r in readers):
                for r in readers:
                    w = graph.tensors[r.inputs[1]]
                    r.inputs[1] = graph.const((w.data.astype(np.float64) * c).astype(w.dtype), "weights")
                    r.inputs[0] = x
            else:
                continue
            done += 1
            changed = True
            graph.prune()
            break
    return done


# ops a scalar factor passes through unchanged (f(c * x) = c * f(x)); MAX_POOL_2D only for c > 0
_LINEAR = {"RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "PAD", "MEAN", "SUM", "AVERAGE_POOL_2D",
           "MAX_POOL_2D", "SLICE", "STRIDED_SLICE", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "MUL"}
MAX_SINK_OPS = 32


def _sink_plan(graph: Graph, start: str, c: float, users) -> tuple[list[Op], list[Op]] | None:
    """(ops the factor passes through, weighted ops that absorb it) when every path from ``start`` ends in
    the weights of a convolution / fully-connected op; None otherwise."""
    through, into, seen = [], [], set()
    stack = [start]
    while stack:
        t = stack.pop()
        readers = users.get(t, [])
        if not readers or t in graph.outputs:
            return None
        for r in readers:
            if id(r) in seen:
                return None          # two paths meet: the factor would count twice
            seen.add(id(r))
            if len(seen) > MAX_SINK_OPS:
                return None
            if r.opcode in _WEIGHTED and r.inputs[0] == t and t not in r.inputs[1:] \
                    and graph.tensors[r.inputs[1]].data is not None and graph.tensors[r.inputs[1]].quant is None:
                into.append(r)
                continue
            if r.opcode not in _LINEAR or len(r.outputs) != 1 or getattr(r.options, "fusedActivationFunction", 0):
                return None
            if r.opcode == "MAX_POOL_2D" and c <= 0:
                return None
            if r.opcode == "MUL":
                if len(r.inputs) != 2 or r.inputs.count(t) != 1:
                    return None
            elif r.inputs[0] != t or t in r.inputs[1:]:
                return None
            if r.opcode == "PAD" and len(r.inputs) > 2:
                return None
            through.append(r)
            stack.append(r.outputs[0])
    return through, into


def sink_scalar_muls(graph: Graph, ranges: dict | None = None) -> int:
    """A MUL by a scalar constant whose every path reaches the weights of convolutions / fully-connected
    ops through ops the factor passes (PAD, MEAN, MAX_POOL_2D, RESHAPE, a MUL with another activation...)
    goes into those weights; the ops between keep their calibrated ranges divided by the factor. In
    MobileNetV3-style models hard-swish's ``/ 6`` reaches the next convolution through the squeeze-excite
    block's MEAN and its channel-scale MUL (PP-OCR cls: 9 full-size int8 MULs). Exact in float."""
    done = 0
    changed = True
    while changed:
        changed = False
        users = graph.consumers()
        for op in graph.ops:
            found = _scalar_mul(graph, op)
            if found is None or op.outputs[0] in graph.outputs or found[1] == 0.0:
                continue
            x, c = found
            plan = _sink_plan(graph, op.outputs[0], c, users)
            if plan is None:
                continue
            through, into = plan
            for r in into:
                w = graph.tensors[r.inputs[1]]
                r.inputs[1] = graph.const((w.data.astype(np.float64) * c).astype(w.dtype), "weights")
            for r in through:           # they now hold 1 / c times the source model's values
                graph.tensors[r.outputs[0]].scale /= c
            if ranges is not None:
                for r in through:
                    o = r.outputs[0]
                    if o in ranges:
                        lo, hi = float(ranges[o][0]) / c, float(ranges[o][1]) / c
                        ranges[o] = (min(lo, hi), max(lo, hi))
            graph.replace_uses(op.outputs[0], x)
            graph.ops.remove(op)
            done += 1
            changed = True
            break
    graph.prune()
    return done


def even_splits(graph: Graph) -> int:
    """SPLIT_V with constant, equal sizes -> SPLIT (same outputs)."""
    done = 0
    for op in graph.ops:
        if op.opcode != "SPLIT_V" or len(op.inputs) != 3:
            continue
        sizes, axis = graph.tensors[op.inputs[1]].data, graph.tensors[op.inputs[2]].data
        x = graph.tensors[op.inputs[0]]
        if sizes is None or axis is None or sizes.size != len(op.outputs) or len(set(sizes.tolist())) != 1 \
                or int(sizes[0]) * sizes.size != x.shape[int(axis.ravel()[0]) % len(x.shape)]:
            continue
        opts = fb.SplitOptionsT()
        opts.numSplits = int(sizes.size)
        op.opcode, op.options = "SPLIT", opts
        op.inputs = [graph.const(np.asarray(int(axis.ravel()[0]), np.int32), "axis"), op.inputs[0]]
        done += 1
    graph.prune()
    return done
