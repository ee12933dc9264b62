"""Peephole passes on the IR after layout optimization."""
from __future__ import annotations

import hashlib

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from .ir import Graph, Op
from .layout import sweep
from .ops.common import tf_same_pads

_FUSABLE_ACT = {"RELU": fb.ActivationFunctionType.RELU, "RELU6": fb.ActivationFunctionType.RELU6,
                "RELU_N1_TO_1": fb.ActivationFunctionType.RELU_N1_TO_1}
# CONCATENATION is not a host: its schema has the field, but the builtin kernel refuses any activation at
# prepare time (only XNNPACK accepted it, so models failed wherever XNNPACK did not take the node).
_HOSTS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV",
          "AVERAGE_POOL_2D", "MAX_POOL_2D", "TRANSPOSE_CONV"}


def fuse_activations(graph: Graph) -> int:
    """Fold RELU/RELU6/RELU_N1_TO_1 into the op producing their input (TFLite's fused activation)."""
    fused = 0
    users = graph.consumers()
    prod = graph.producers()
    for op in list(graph.ops):
        act = _FUSABLE_ACT.get(op.opcode)
        src = op.inputs[0] if act is not None else None
        host = prod.get(src) if src is not None else None
        if host is None or host.opcode not in _HOSTS or host.options is None:
            continue
        if len(users.get(src, [])) != 1 or src in graph.outputs:
            continue
        if getattr(host.options, "fusedActivationFunction", None) != fb.ActivationFunctionType.NONE:
            continue
        if graph.tensors[src].dtype.kind != "f":
            continue
        host.options.fusedActivationFunction = act
        host.outputs[0] = op.outputs[0]
        graph.ops.remove(op)
        prod[op.outputs[0]] = host
        fused += 1
    graph.prune()
    return fused


def dedupe_constants(graph: Graph) -> int:
    """Merge constant tensors with identical dtype, shape and bytes (shared weights are stored once)."""
    seen: dict[tuple, str] = {}
    merged = 0
    for name, t in list(graph.tensors.items()):
        if t.data is None or t.quant is not None or name in graph.outputs:
            continue
        key = (t.dtype.str, t.shape, hashlib.sha256(np.ascontiguousarray(t.data).tobytes()).digest())
        keep = seen.setdefault(key, name)
        if keep != name:
            graph.replace_uses(name, keep)
            merged += 1
    graph.prune()
    return merged


def fold_pad_into_conv(graph: Graph) -> int:
    """PAD (zeros, spatial only) feeding a VALID CONV_2D / DEPTHWISE_CONV_2D becomes the conv's SAME padding
    when the pads are exactly those SAME applies."""
    users = graph.consumers()
    prod = graph.producers()
    folded = 0
    for conv in list(graph.ops):
        if conv.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D") or conv.options.padding != fb.Padding.VALID:
            continue
        pad = prod.get(conv.inputs[0])
        if pad is None or pad.opcode != "PAD" or len(users.get(conv.inputs[0], [])) != 1:
            continue
        spec = graph.tensors[pad.inputs[1]].data
        src = graph.tensors[pad.inputs[0]]
        if spec is None or len(src.shape) != 4 or spec[0].any() or spec[3].any():
            continue
        o = conv.options
        w = graph.tensors[conv.inputs[1]].shape
        kernel, strides = (w[1], w[2]), (o.strideH, o.strideW)
        dil = (o.dilationHFactor or 1, o.dilationWFactor or 1)
        if [tuple(int(v) for v in spec[i]) for i in (1, 2)] != tf_same_pads(src.shape[1:3], kernel, strides, dil):
            continue
        conv.inputs[0] = pad.inputs[0]
        o.padding = fb.Padding.SAME
        folded += 1
    graph.prune()
    return folded


def remove_identity_slices(graph: Graph) -> int:
    """Drop STRIDED_SLICE / SLICE ops that keep the whole tensor."""
    removed = 0
    for op in list(graph.ops):
        if op.opcode not in ("STRIDED_SLICE", "SLICE") or op.outputs[0] in graph.outputs:
            continue
        src, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        begin = graph.tensors[op.inputs[1]].data
        strides = graph.tensors[op.inputs[3]].data if op.opcode == "STRIDED_SLICE" else None
        if src.shape != out.shape or begin is None or begin.any() or (strides is not None and (strides != 1).any()):
            continue
        graph.replace_uses(op.outputs[0], op.inputs[0])
        graph.ops.remove(op)
        removed += 1
    graph.prune()
    return removed


def fold_transpose_into_fc(graph: Graph) -> int:
    """TRANSPOSE -> RESHAPE(flatten) -> FULLY_CONNECTED with constant weights: permute the weight columns
    instead, so a CNN flattening its NCHW features before the classifier keeps NHWC with no TRANSPOSE."""
    users = graph.consumers()
    prod = graph.producers()
    folded = 0
    for fc in list(graph.ops):
        if fc.opcode != "FULLY_CONNECTED" or graph.tensors[fc.inputs[1]].data is None:
            continue
        rs = prod.get(fc.inputs[0])
        tr = prod.get(rs.inputs[0]) if rs is not None and rs.opcode == "RESHAPE" else None
        if tr is None or tr.opcode != "TRANSPOSE" or graph.tensors[tr.inputs[1]].data is None:
            continue
        if len(users.get(rs.outputs[0], [])) != 1 or len(users.get(tr.outputs[0], [])) != 1:
            continue
        perm = [int(p) for p in graph.tensors[tr.inputs[1]].data]
        src, flat = graph.tensors[tr.inputs[0]], graph.tensors[rs.outputs[0]]
        w = graph.tensors[fc.inputs[1]].data
        k = int(np.prod(src.shape[1:]))
        if perm[0] != 0 or len(flat.shape) != 2 or flat.shape != (src.shape[0], k) or w.shape[1] != k:
            continue
        ids = np.transpose(np.arange(k).reshape((1,) + src.shape[1:]), perm).reshape(-1)
        w2 = np.empty_like(w)
        w2[:, ids] = w
        fc.inputs[1] = graph.const(w2, "weights")
        rs.inputs[0] = tr.inputs[0]
        graph.ops.remove(tr)
        folded += 1
    graph.prune()
    return folded



# Blocked convolutions (``block_thin_convs``). One-op LiteRT models, XNNPACK, 1 thread, on the x86 host
# (AVX512-VNNI), int8 / fp32 microseconds, original -> blocked (P outputs per block):
#   Cin 1 -> 1, 256 taps, stride 2 (basic-pitch's low-pass), 44k samples:  34,874 -> 121 / 8,326 -> 273
#   Cin 8 -> 8, 3x39 (basic-pitch's harmonic conv), 172x264:   31,050 -> 3,545 (P=4) / 24,731 -> 10,962 (P=4)
#   Cin 8 -> 1, 5x5, 172x264:                                  6,947 -> 906 (P=8) / 5,422 -> 2,687 (P=4)
#   Cin 1 -> 32, 7x7, stride 3, 172x264:                       5,195 -> 1,420 (P=2) / 1,369 -> 1,708 (P=2: slower)
#   Cin 3 -> 16, 3x3, stride 2 (an image model's first layer): 1,366 -> 544 (P=4) / 464 -> 786 (P=2: slower)
#   Cin 16 -> 16, 3x3, 56x56:                                  438 -> 228 (P=2) / 457 -> 443 (P=2)
#   Cin 16 -> 8, 1x1, 24x96 (a pointwise layer):               135 -> 74 (P=4) / 69 -> 77 (P=2: slower)
#   Cin 32 -> 32, 3x3, 56x56 (an ordinary layer):              289 -> 213 (P=2) / 702 -> 1,049 (P=2: slower)
# int8 wants a reduction at least ``_DEPTH`` deep per tap (B * Cin; its depth block) and a tile at least
# ``_WIDTH`` wide (P * Cout), with the smallest block that gives both (deeper blocks measured no faster);
# fp32 only a tile ``_FLOAT_WIDTH`` wide, for convolutions narrower than that and wider than 1x1 (a float
# reduction has no depth block, and XNNPACK's float first-layer kernel is faster than any blocked form).
# The kernel grows (P * T * B / kw times; zeros where an output phase does not reach): a convolution may add
# ``_GROWTH`` values of weights, the model ``_BUDGET`` in all or as many as it has, spent where the most
# multiply-adds run in the emptiest tiles first; and only where that idle work (multiply-adds x idle tile
# share, ``_waste``) is at least ``_MIN_IDLE_SHARE`` of the model's multiply-adds, unless its weights do not
# grow (basic-pitch's 14 filter-bank convolutions, 10% each, 3.5 ms in all). PP-OCR cls's dozen narrow
# 1x1 layers each idle under 15% of its work: blocking them all grew its int8 file from 0.48 to 0.64 of
# fp32's size for no measurable speed.
_DEPTH, _WIDTH, _FLOAT_WIDTH, _MAX_BLOCK, _MAX_INFLATION, _GROWTH, _BUDGET = 8, 32, 16, 256, 8.0, 65536, 131072
_MIN_IDLE_SHARE = 0.1


def _block_size(kw: int, stride: int, cin: int, cout: int, kind: str) -> int | None:
    """Outputs per block P for a convolution along W, or None when it is not thin (or blocking inflates
    the multiply-adds more than ``_MAX_INFLATION`` times)."""
    depth, width = (_DEPTH, _WIDTH) if kind == "int8" else (1, _FLOAT_WIDTH)
    if cin >= depth and cout >= width or kind != "int8" and kw == 1:
        return None
    best = None
    for p in range(1, _MAX_BLOCK // stride + 1):
        b = stride * p
        if -(-(kw + (p - 1) * stride) // b) * b > _MAX_INFLATION * kw:
            break
        if b > 1:
            best = p
        if b * cin >= depth and p * cout >= width:
            break
    return best


def _macs(graph: Graph, op) -> int:
    """Multiply-adds of a convolution or fully connected layer (0 for other ops)."""
    if op.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(op.inputs) < 2:
        return 0
    w = graph.tensors[op.inputs[1]].shape
    out = int(np.prod(graph.tensors[op.outputs[0]].shape))
    if op.opcode == "FULLY_CONNECTED":
        return out * int(w[-1])
    return out * int(np.prod(w[1:3])) * (int(w[3]) if op.opcode == "CONV_2D" else 1)


def _waste(cin: int, cout: int) -> float:
    """How much of a GEMM tile a thin convolution leaves idle (the order the weight budget is spent in, times
    its multiply-adds)."""
    return 32 / min(cin, 32) * _WIDTH / min(cout, _WIDTH)


def block_thin_convs(graph: Graph, kind: str = "float", ranges: dict | None = None,
                     skip=lambda op: False) -> dict:
    """A CONV_2D with few input or output channels, computed on blocks of its width: P outputs per block of
    B = stride * P input columns. The input [N, H, W, C] is read as [N, H, W/B, B*C] (a RESHAPE, after a
    PAD to whole blocks), the kernel becomes [P*Cout, kh, T, B*C] (each output phase the original taps,
    shifted, zeros elsewhere) at stride 1 along W, and the output [N, Ho, Wo/P, P*Cout] is read back as
    [N, Ho, Wo, Cout] (a RESHAPE and a SLICE). The arithmetic is the same sums; the GEMM gets deep
    reductions and wide tiles instead of 1-channel ones (measurements above ``_block_size``). ``kind``:
    "int8" or "float". ``ranges`` (int8 calibration) get the new tensors: the blocks carry the input's values
    (and the padding's zeros), the blocked output the output's. ``skip(op)``: convolutions to leave alone
    (those mixed precision keeps float or widens, by their tensors' names). Returns how many were blocked and
    the weight values that added (for the manifest)."""
    plans = []
    weights = sum(t.data.size for t in graph.tensors.values() if t.data is not None and t.data.ndim == 4)
    total = sum(_macs(graph, op) for op in graph.ops)
    for op in graph.ops:
        if op.opcode != "CONV_2D" or op.options is None or skip(op):
            continue
        x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
        bias = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] is not None else None
        o = op.options
        if x.data is not None or w.data is None or x.dtype != np.float32 or w.dtype != np.float32 \
                or len(x.shape) != 4 or (bias is not None and bias.data is None) \
                or (o.dilationHFactor or 1) != 1 or (o.dilationWFactor or 1) != 1:
            continue
        cout, kh, kw, cin = w.shape
        if x.shape[3] != cin:           # a grouped convolution
            continue
        p = _block_size(kw, o.strideW, cin, cout, kind)
        if p is None:
            continue
        b = o.strideW * p
        extra = p * cout * kh * -(-(kw + (p - 1) * o.strideW) // b) * b * cin - w.data.size
        idle = _macs(graph, op) * _waste(cin, cout)
        if extra <= _GROWTH and (idle >= _MIN_IDLE_SHARE * total or extra <= 0):     # no growth: always
            plans.append((-idle, len(plans), op, p, extra))
    budget = allowed = max(_BUDGET, weights)
    done = 0
    prod, users = graph.producers(), graph.consumers()
    for _, _, op, p, extra in sorted(plans, key=lambda t: t[:2]):
        if extra > budget:
            continue
        if _block(graph, op, p, ranges, prod, users):
            budget -= max(extra, 0)
            done += 1
    graph.prune()
    return {"convs": done, "weights_added": int(allowed - budget)}


def _block(graph: Graph, op, p: int, ranges: dict | None, prod: dict, users: dict) -> bool:
    """Replace ``op`` by its blocked form (``block_thin_convs``); False when its shapes do not allow it."""
    x, w = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    bias = graph.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] is not None else None
    out = graph.tensors[op.outputs[0]]
    o = op.options
    cout, kh, kw, cin = w.shape
    n, h, wid, _ = x.shape
    s = o.strideW
    (top, bottom), (left, right) = (tf_same_pads((h, wid), (kh, kw), (o.strideH, s), (1, 1))
                                    if o.padding == fb.Padding.SAME else ((0, 0), (0, 0)))
    wo = out.shape[2]
    if (h + top + bottom - kh) // o.strideH + 1 != out.shape[1]:
        return False
    b = s * p
    taps = -(-(kw + (p - 1) * s) // b)
    blocks = max(-(-wo // p) + taps - 1, -(-(left + wid) // b))
    nb = blocks - taps + 1                       # output blocks computed (>= Wo / P)
    # the kernel: output phase q reads input columns q*s .. q*s+kw-1 of its block's window
    w2 = np.zeros((p, cout, kh, taps * b, cin), np.float32)
    for q in range(p):
        w2[q, :, :, q * s:q * s + kw, :] = w.data
    w2 = w2.reshape(p * cout, kh, taps, b * cin)
    bias2 = np.tile(np.zeros(cout, np.float32) if bias is None else bias.data.astype(np.float32), p)
    src = x.name
    pads = np.asarray([[0, 0], [top, bottom], [left, blocks * b - left - wid], [0, 0]], np.int32)
    up = prod.get(src)
    spec = graph.tensors[up.inputs[1]].data if up is not None and up.opcode == "PAD" else None
    if spec is not None and spec.shape == (4, 2) and (spec >= 0).all() and not spec[3].any() \
            and len(users.get(src, [])) == 1 \
            and src not in graph.outputs:
        pads = pads + spec.astype(np.int32)                                # one PAD, not two
        src = up.inputs[0]
    new = []
    base = graph.tensors[src].shape
    padded = (n, base[1] + int(pads[1].sum()), base[2] + int(pads[2].sum()), cin)
    if pads.any():      # padded as [N, H, W*C]: XNNPACK pads a 1-channel NHWC tensor element by element
        flat_in = (n, base[1], base[2] * cin)
        t = graph.add(f"{out.name}_rows", flat_in, np.float32)
        new.append(reshape_op(graph, src, t, op.origin))
        pads3 = np.asarray([pads[0], pads[1], pads[2] * cin], np.int32)
        src = graph.add(f"{out.name}_blockpad", (n, padded[1], padded[2] * cin), np.float32)
        new.append(Op("PAD", [t, graph.const(pads3, "pads")], [src], fb.PadOptionsT(), op.origin))
    shaped = (n, padded[1], blocks, b * cin)
    t = graph.add(f"{out.name}_blocks", shaped, np.float32)
    new.append(reshape_op(graph, src, t, op.origin))
    ho = out.shape[1]
    conv = fb.Conv2DOptionsT()
    conv.padding, conv.strideH, conv.strideW = fb.Padding.VALID, o.strideH, 1
    conv.dilationHFactor = conv.dilationWFactor = 1
    conv.fusedActivationFunction = o.fusedActivationFunction
    y = graph.add(f"{out.name}_blocked", (n, ho, nb, p * cout), np.float32)
    new.append(Op("CONV_2D", [t, graph.const(w2, "weights"), graph.const(bias2, "bias")], [y], conv,
                  op.origin))
    flat = (n, ho, nb * p, cout)
    if nb * p == wo:
        new.append(reshape_op(graph, y, out.name, op.origin))
    else:
        t = graph.add(f"{out.name}_unblocked", flat, np.float32)
        new.append(reshape_op(graph, y, t, op.origin))
        new.append(Op("SLICE", [t, graph.const(np.zeros(4, np.int32), "begin"),
                                graph.const(np.asarray(out.shape, np.int32), "size")], [out.name],
                      fb.SliceOptionsT(), op.origin))
    if ranges is not None:
        at = next(i for i, o_ in enumerate(new) if o_.opcode == "CONV_2D")
        if x.name in ranges:
            lo, hi = ranges[x.name]
            ranges.update({o_.outputs[0]: (min(lo, 0.0), max(hi, 0.0)) for o_ in new[:at]})
        if out.name in ranges:
            ranges.update({o_.outputs[0]: ranges[out.name] for o_ in new[at:-1]})
    at = graph.ops.index(op)
    graph.ops[at:at + 1] = new
    return True


def reshape_op(graph: Graph, src: str, out: str, origin: str = "") -> Op:
    """A RESHAPE of ``src`` into the (existing) tensor ``out``'s shape, not yet placed in the graph."""
    shape = [int(d) for d in graph.tensors[out].shape]
    opts = fb.ReshapeOptionsT()
    opts.newShape = shape
    return Op("RESHAPE", [src, graph.const(np.asarray(shape, np.int32), "shape")], [out], opts, origin)


def narrow_pads(graph: Graph) -> int:
    """PAD of a 4-D tensor with one channel, not padded along it: padded as [N, H, W] between two RESHAPEs.
    XNNPACK pads a 1-channel NHWC tensor element by element: 1.1 ms for basic-pitch's [1, 172, 309, 1]
    harmonic-stacking pads, 3 us for the same bytes as 3-D (``benchmarks/RESULTS.md``)."""
    done = 0
    for op in list(graph.ops):
        if op.opcode != "PAD" or len(op.inputs) != 2:
            continue
        x, spec = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]].data
        out = graph.tensors[op.outputs[0]]
        if x.data is not None or len(x.shape) != 4 or x.shape[3] != 1 or spec is None or spec.shape != (4, 2) \
                or spec[3].any():
            continue
        flat_in, flat_out = x.shape[:3], out.shape[:3]
        a = graph.add(f"{x.name}_3d", flat_in, x.dtype)
        b = graph.add(f"{out.name}_3d", flat_out, out.dtype)
        at = graph.ops.index(op)
        graph.ops[at:at + 1] = [
            reshape_op(graph, x.name, a, op.origin),
            Op("PAD", [a, graph.const(np.ascontiguousarray(spec[:3]).astype(spec.dtype), "pads")], [b],
               op.options, op.origin),
            reshape_op(graph, b, out.name, op.origin)]
        done += 1
    return done


# elementwise ops a RESHAPE that only moves size-1 axes can be moved past (their constant operand reshaped)
_SINK_UNARY = {"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "HARD_SWISH", "ABS", "NEG",
               "EXP", "SQRT", "RSQRT", "LEAKY_RELU", "GELU", "ELU"}
_SINK_BINARY = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "POW", "SQUARED_DIFFERENCE"}


def _unit_move(a, b) -> bool:
    """Whether reshaping ``a`` to ``b`` only adds, drops or moves axes of size 1."""
    return [d for d in a if d != 1] == [d for d in b if d != 1]


def _sink_one(graph: Graph, r: Op, users) -> bool:
    src, mid = r.inputs[0], r.outputs[0]
    a, b = graph.tensors[src].shape, graph.tensors[mid].shape
    readers = users.get(mid, [])
    if graph.tensors[src].data is not None or mid in graph.outputs or len(readers) != 1 or not _unit_move(a, b):
        return False
    e = readers[0]
    out = e.outputs[0]
    if len(e.outputs) != 1 or out in graph.outputs or graph.tensors[out].shape != b \
            or graph.tensors[out].dtype.kind != "f":
        return False
    if e.opcode in _SINK_UNARY:
        if e.inputs[0] != mid or any(n is not None and graph.tensors[n].data is None for n in e.inputs[1:]):
            return False
        new_inputs = [src] + e.inputs[1:]
    elif e.opcode in _SINK_BINARY and len(e.inputs) == 2 and e.inputs.count(mid) == 1:
        k = e.inputs.index(mid)
        c = graph.tensors[e.inputs[1 - k]]
        if c.data is None:
            return False
        if c.data.size == 1:
            other = e.inputs[1 - k]
        else:
            padded = (1,) * (len(b) - c.data.ndim) + tuple(c.data.shape)
            if padded != tuple(b):
                return False
            other = graph.const(np.ascontiguousarray(c.data.reshape(a)), f"{c.name}_r")
        new_inputs = [src, other] if k == 0 else [other, src]
    else:
        return False
    # ``out`` keeps its name (calibrated or a quantized model's own ranges are keyed by it) in the new view;
    # its readers get the RESHAPE's output
    seen = graph.add(f"{out}_r", b, graph.tensors[out].dtype)
    graph.replace_uses(out, seen)
    graph.tensors[out].shape = tuple(a)
    e.inputs = new_inputs
    graph.ops.insert(graph.ops.index(e) + 1, reshape_op(graph, out, seen, e.origin))
    return True


def sink_reshapes(graph: Graph) -> int:
    """Move a RESHAPE that only moves size-1 axes past the elementwise ops that read it (their constants
    reshaped alike); the layout sweep merges the RESHAPE pairs that meet. A squeeze-excite block's NCHW
    [1, C, 1, 1] view (the layout pass writes its transposes as RESHAPEs) then disappears, and its bias,
    scale and activations sit next to the convolution again, where ``fold_affine`` and ``fuse_activations``
    take them: PP-OCR's classifier had RESHAPE, ADD, RESHAPE, ..., MUL, ADD, RELU_0_TO_1, RESHAPE around each
    SE convolution."""
    moved = 0

    def step(op, prod, users) -> bool:
        nonlocal moved
        if op.opcode != "RESHAPE" or not _sink_one(graph, op, users):
            return False
        moved += 1
        return True

    sweep(graph, step)
    return moved


def relu01_as_min(graph: Graph) -> int:
    """RELU_0_TO_1 of a convolution's / fully-connected op's only output -> the host's fused RELU and
    MINIMUM(x, 1). XNNPACK has no RELU_0_TO_1 (each one left the delegated graph: PP-OCR cls ran in 10
    partitions in fp32); it takes MINIMUM, and int8 saturation does both clamps (``quant/clamps.py``)."""
    users, prod = graph.consumers(), graph.producers()
    done = 0
    for op in list(graph.ops):
        if op.opcode != "RELU_0_TO_1":
            continue
        src = op.inputs[0]
        host = prod.get(src)
        if host is None or host.opcode not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") \
                or host.options is None or len(users.get(src, [])) != 1 or src in graph.outputs \
                or getattr(host.options, "fusedActivationFunction", None) != fb.ActivationFunctionType.NONE \
                or graph.tensors[src].dtype != np.float32:
            continue
        host.options.fusedActivationFunction = fb.ActivationFunctionType.RELU
        op.opcode, op.options = "MINIMUM", None
        op.inputs = [src, graph.const(np.float32(1.0), "one")]
        done += 1
    return done
