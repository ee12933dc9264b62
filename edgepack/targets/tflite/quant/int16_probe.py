"""Which LiteRT kernels take int16 activations: one-op models written by our converter, run in LiteRT.

Each case is a one-node ONNX model; it is lowered, calibrated on random inputs and finished at 16x8 with
only the op under test allowed in int16 (everything else float), then run in LiteRT with the default
delegates (XNNPACK) and without, against the float model. Verdicts per op and resolver:

    supported   runs and its max error is at most ``WRONG_AT`` of the float output's range
    wrong       runs but misses by more (the error is recorded)
    refused     the interpreter refuses it (prepare or invoke fails; the message is recorded)
    absent      the op was not quantized to int16 by the pass (nothing to measure)

Also the conversions the mixed ladder needs: QUANTIZE float->int16, int8->int16, int16->int8, int16->int16
and DEQUANTIZE int16->float. ``benchmarks/probe_int16.py`` prints the table and the ``INT16_OPS`` line.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

WRONG_AT = 0.02            # max |error| / range of the float output beyond which a kernel is "wrong"
RESOLVERS = ("xnnpack", "builtin")
_rng = np.random.default_rng(0)


def _w(*shape, scale=0.3):
    return (_rng.standard_normal(shape) * scale).astype(np.float32)


def _case(op_type, inputs, attrs=None, consts=None, opset=17, nodes=None):
    """A small model: ``inputs`` (name -> shape, float32 graph inputs), ``consts`` (name -> array; a name
    starting with ``_`` is an empty optional input) and one ``op_type`` node reading them all (or ``nodes``)."""
    consts = consts or {}
    names = [("" if n.startswith("_") else n) for n in list(inputs) + list(consts)]
    nodes = nodes or [h.make_node(op_type, names, ["y"], **(attrs or {}))]
    g = h.make_graph(nodes, "probe", [h.make_tensor_value_info(n, TP.FLOAT, s) for n, s in inputs.items()],
                     [h.make_value_info("y", onnx.TypeProto())],
                     [nh.from_array(np.asarray(v), n) for n, v in consts.items() if not n.startswith("_")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    inferred = {v.name: v for v in list(m.graph.value_info) + list(m.graph.output)}["y"]
    m.graph.output[0].CopyFrom(inferred)
    return m


def _i64(*v):
    return np.asarray(v, np.int64)


X4 = {"x": [1, 8, 8, 8]}
CASES = {
    "CONV_2D": lambda: _case("Conv", X4, {"pads": [1, 1, 1, 1]}, {"w": _w(8, 8, 3, 3), "b": _w(8)}),
    "DEPTHWISE_CONV_2D": lambda: _case("Conv", X4, {"group": 8, "pads": [1, 1, 1, 1]},
                                       {"w": _w(8, 1, 3, 3), "b": _w(8)}),
    "FULLY_CONNECTED": lambda: _case("Gemm", {"x": [1, 16]}, {"transB": 1}, {"w": _w(8, 16), "b": _w(8)}),
    "TRANSPOSE_CONV": lambda: _case("ConvTranspose", X4, {"strides": [2, 2]}, {"w": _w(8, 4, 2, 2), "b": _w(4)}),
    "ADD": lambda: _case("Add", {"x": [1, 8, 8, 8], "z": [1, 8, 8, 8]}),
    "SUB": lambda: _case("Sub", {"x": [1, 8, 8, 8], "z": [1, 8, 8, 8]}),
    "MUL": lambda: _case("Mul", {"x": [1, 8, 8, 8], "z": [1, 8, 8, 8]}),
    "MEAN": lambda: _case("ReduceMean", X4, {"axes": [2, 3], "keepdims": 1}),
    "SUM": lambda: _case("ReduceSum", X4, consts={"axes": _i64(1)}, opset=17),
    "SQUARED_DIFFERENCE": lambda: _layer_norm(),
    "RSQRT": lambda: _layer_norm(),
    "HARD_SWISH": lambda: _case("HardSwish", X4, opset=17),
    "LEAKY_RELU": lambda: _case("LeakyRelu", X4, {"alpha": 0.1}),
    "RELU": lambda: _case("Relu", X4),
    "RELU6": lambda: _case("Clip", X4, consts={"lo": np.float32(0), "hi": np.float32(6)}),
    "PRELU": lambda: _case("PRelu", X4, consts={"s": np.abs(_w(8, 1, 1))}),
    "GELU": lambda: _case("Gelu", {"x": [1, 64]}, opset=20),
    "ELU": lambda: _case("Elu", X4),
    "ABS": lambda: _case("Abs", X4),
    "BATCH_MATMUL": lambda: _case("MatMul", {"x": [1, 4, 8, 16], "z": [1, 4, 16, 8]}),
    "ARG_MAX": lambda: _case("ArgMax", {"x": [1, 64]}, {"axis": 1, "keepdims": 0}),
    "ARG_MIN": lambda: _case("ArgMin", {"x": [1, 64]}, {"axis": 1, "keepdims": 0}),
    "RESHAPE": lambda: _case("Reshape", X4, consts={"s": _i64(1, 64, 8)}),
    "TRANSPOSE": lambda: _case("Transpose", {"x": [1, 4, 8, 16]}, {"perm": [0, 2, 1, 3]}),
    "MAX_POOL_2D": lambda: _case("MaxPool", X4, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    "AVERAGE_POOL_2D": lambda: _case("AveragePool", X4, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    "STRIDED_SLICE": lambda: _case("Slice", {"x": [1, 64]}, consts={"s": _i64(1), "e": _i64(60), "a": _i64(1),
                                                                   "st": _i64(2)}),
    "SLICE": lambda: _case("Slice", {"x": [1, 64]}, consts={"s": _i64(3), "e": _i64(60), "a": _i64(1)}),
    "GATHER": lambda: _case("Gather", {"x": [10, 16]}, {"axis": 0}, {"i": _i64(1, 5, 7)}),
    "PADV2": lambda: _case("Pad", {"x": [1, 64]}, consts={"p": _i64(0, 2, 0, 3), "v": np.float32(0.5)}),
    "GATHER_ND": lambda: _case("GatherND", {"x": [4, 16]}, consts={"i": _i64(1, 3, 0).reshape(3, 1)}),
    "SPLIT_V": lambda: _case("Split", {"x": [1, 64]}, consts={"n": _i64(24, 40)}, opset=18, nodes=[
        h.make_node("Split", ["x", "n"], ["a", "b"], axis=1),
        h.make_node("Concat", ["b", "a"], ["y"], axis=1)]),
    "REVERSE_V2": lambda: _case("ArgMax", {"x": [1, 64]}, {"axis": 1, "keepdims": 0, "select_last_index": 1}),
    "PAD": lambda: _case("Pad", {"x": [1, 64]}, consts={"p": _i64(0, 2, 0, 3)}),
    "DEPTH_TO_SPACE": lambda: _case("DepthToSpace", X4, {"blocksize": 2, "mode": "DCR"}),
    "SPACE_TO_DEPTH": lambda: _case("SpaceToDepth", X4, {"blocksize": 2}),
    "TILE": lambda: _case("Tile", {"x": [1, 4, 8]}, consts={"r": _i64(1, 2, 1)}),
    "BROADCAST_TO": lambda: _case("Expand", {"x": [1, 1, 8]}, consts={"s": _i64(1, 4, 8)}),
    "RESIZE_NEAREST_NEIGHBOR": lambda: _case("Resize", X4, {"mode": "nearest"},
                                             {"_r": np.zeros(0, np.float32),
                                              "sc": np.asarray([1, 1, 2, 2], np.float32)}),
    "RESIZE_BILINEAR": lambda: _case("Resize", X4, {"mode": "linear"},
                                     {"_r": np.zeros(0, np.float32), "sc": np.asarray([1, 1, 2, 2], np.float32)}),
    "REDUCE_MAX": lambda: _case("ReduceMax", X4, {"axes": [1], "keepdims": 1}),
    "REDUCE_MIN": lambda: _case("ReduceMin", X4, {"axes": [1], "keepdims": 1}),
    "CONCATENATION": lambda: _case("Concat", {"x": [1, 8, 8, 8], "z": [1, 8, 8, 8]}, {"axis": 1}),
    "MAXIMUM": lambda: _case("Max", {"x": [1, 64], "z": [1, 64]}),
    "MINIMUM": lambda: _case("Min", {"x": [1, 64], "z": [1, 64]}),
    "SOFTMAX": lambda: _then_add("Softmax"),
    "LOGISTIC": lambda: _case("Sigmoid", X4),
    "TANH": lambda: _case("Tanh", X4),
    "LOG_SOFTMAX": lambda: _then_add("LogSoftmax"),
}


def _layer_norm():
    return _case("LayerNormalization", {"x": [1, 4, 32]}, {"axis": -1},
                 {"g": np.abs(_w(32)) + 0.5, "b": _w(32)})


def _then_add(op_type):
    """``op_type`` over the last axis, then an Add (a softmax that is the model's output stays float)."""
    return _case(op_type, {"x": [1, 4, 16]}, consts={"c": _w(16)}, nodes=[
        h.make_node(op_type, ["x"], ["s"], axis=-1), h.make_node("Add", ["s", "c"], ["y"])])


def _interpreter(data: bytes, resolver: str):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    kind = OpResolverType.AUTO if resolver == "xnnpack" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=data, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    return it


def _run(data: bytes, feeds: list[np.ndarray], resolver: str) -> np.ndarray:
    from edgepack_runtime.backends.tflite import quantize_input
    it = _interpreter(data, resolver)
    for d, x in zip(it.get_input_details(), feeds):
        it.set_tensor(d["index"], quantize_input(x, d))
    it.invoke()
    d = it.get_output_details()[0]
    return it.get_tensor(d["index"]).astype(np.float64)


def _verdict(make, resolver: str, ref: np.ndarray) -> dict:
    try:
        got = _run(*make(), resolver)
    except Exception as exc:                       # noqa: BLE001 -- the interpreter's refusal is the finding
        return {"verdict": "refused", "why": str(exc).strip().splitlines()[-1][:160] if str(exc) else repr(exc)}
    span = float(np.ptp(ref)) or 1.0
    err = float(np.max(np.abs(got - ref))) / span if got.shape == ref.shape else float("inf")
    return {"verdict": "supported" if err <= WRONG_AT else "wrong", "error": err}


def probe_op(opcode: str, samples: int = 4) -> dict:
    """The verdict per resolver for ``opcode`` (``CASES``), and the int8 error for comparison."""
    from ..convert import lower
    from . import ranges as calibrate
    low = lower(CASES[opcode]())
    if opcode not in {op.opcode for op in low.graph.ops}:
        return {r: {"verdict": "absent", "why": "the case does not lower to it"} for r in RESOLVERS}
    rng = np.random.default_rng(1)
    names = [e["name"] for e in low.io["inputs"]]
    shapes = {n: low.graph.tensors[t].shape for n, t in zip(names, low.graph.inputs)}
    draw = [{n: (rng.standard_normal(shapes[n]) * 2).astype(np.float32) for n in names} for _ in range(samples)]
    ranges = calibrate.choose_ranges(calibrate.observe(low.float_bytes(), low.io, draw, low.activations()))
    feeds = calibrate.model_feeds(draw[:1], low.io)[0]
    ref = _run(low.float_bytes(), feeds, "builtin")
    tm = low.finish("int16x8", ranges=ranges, int16_ops={opcode})
    wide = [op for op in tm.graph.ops if op.opcode == opcode and any(
        tm.graph.tensors[n].dtype == np.int16 for n in op.inputs + op.outputs if n is not None)]
    if not wide:
        return {r: {"verdict": "absent", "why": "the pass left it float"} for r in RESOLVERS}
    out = {r: _verdict(lambda: (tm.data, feeds), r, ref) for r in RESOLVERS}
    i8 = low.finish("int8", ranges=ranges, int16_ops=())
    out["int8_error"] = _verdict(lambda: (i8.data, feeds), "builtin", ref).get("error")
    return out


def conversions() -> dict[str, dict]:
    """QUANTIZE / DEQUANTIZE between float, int8 and int16 in LiteRT: float x -> a -> b -> float, per resolver."""
    from ..ir import Graph
    from ..writer import serialize
    from .full_integer import qparams
    x = np.linspace(-3, 3, 64, dtype=np.float32).reshape(1, 64)
    q8, q16, q16b = ((6 / 255, -1), np.int8), ((3 / 32767, 0), np.int16), ((4 / 32767, 0), np.int16)
    pairs = {"float->int16": [q16], "int8->int16": [((6 / 255, -1), np.int8), q16],
             "int16->int8": [q16, q8], "int16->int16": [q16, q16b]}
    out = {}
    for name, chain in pairs.items():
        g = Graph()
        src = g.add("x", x.shape, np.float32)
        g.inputs.append(src)
        for (q, dt) in chain:
            dst = g.add("t", x.shape, dt)
            g.tensors[dst].quant = qparams(*q)
            g.op("QUANTIZE", [src], [dst])
            src = dst
        y = g.add("y", x.shape, np.float32)
        g.op("DEQUANTIZE", [src], [y])
        g.outputs.append(y)
        data = serialize(g)
        step = max(q[0] for q, _ in chain)
        out[name] = {}
        for r in RESOLVERS:
            v = _verdict(lambda: (data, [x]), r, x.astype(np.float64))
            if v["verdict"] != "refused":
                v["verdict"] = "supported" if v["error"] * 6 <= step else "wrong"
            out[name][r] = v
    return out


def probe_all(ops=None) -> dict[str, dict]:
    """``probe_op`` for every op with a case (or ``ops``)."""
    return {op: probe_op(op) for op in (ops or CASES)}


def supported(results: dict) -> list[str]:
    """Ops supported under every resolver: the ``INT16_OPS`` table."""
    return sorted(op for op, r in results.items() if all(r[x]["verdict"] == "supported" for x in RESOLVERS))
