"""Quantized ONNX models for the QDQ-intake tests: small float nets quantized by onnxruntime's own
``quantize_static`` (QDQ or QOperator, per-channel int8 weights, uint8 activations unless asked), and
hand-written QDQ graphs for what quantizers rarely emit (weight scales on the wrong axis, 4-bit weights,
a quantized graph input)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def _w(rng, name, shape, s=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)


def conv_net(seed: int = 0) -> onnx.ModelProto:
    """Conv -> Relu -> Conv -> Add (residual) -> MaxPool -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["a"]),
             helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1)]
    inits = [_w(rng, "w1", [8, 3, 3, 3]), _w(rng, "b1", [8], 0.1), _w(rng, "w2", [8, 8, 3, 3], 0.2),
             _w(rng, "b2", [8], 0.1), _w(rng, "wf", [10, 8]), _w(rng, "bf", [10], 0.1)]
    graph = helper.make_graph(nodes, "conv_net", [helper.make_tensor_value_info("x", F, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", F, [1, 10])], inits)
    return _model(graph, 13)


def mlp(seed: int = 1) -> onnx.ModelProto:
    """MatMul + bias -> Relu -> MatMul + bias -> Sigmoid on [1, 16, 32] (a transformer's feed-forward shape)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r1"]), helper.make_node("MatMul", ["r1", "w2"], ["m2"]),
             helper.make_node("Add", ["m2", "b2"], ["h2"]), helper.make_node("Sigmoid", ["h2"], ["y"])]
    inits = [_w(rng, "w1", [32, 64], 0.2), _w(rng, "b1", [64], 0.1), _w(rng, "w2", [64, 8], 0.2),
             _w(rng, "b2", [8], 0.1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", F, [1, 16, 32])],
                              [helper.make_tensor_value_info("y", F, [1, 16, 8])], inits)
    return _model(graph, 13)


def attention_head(seed: int = 2) -> onnx.ModelProto:
    """Single-head self-attention on [1, 16, 32]: softmax(q k^T) v. The cpu policy keeps the two products of
    activations and the Softmax in float."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]), helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("MatMul", ["x", "wv"], ["v"]), helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    inits = [_w(rng, "wq", [32, 32], 0.3), _w(rng, "wk", [32, 32], 0.3), _w(rng, "wv", [32, 32], 0.3)]
    graph = helper.make_graph(nodes, "attention_head", [helper.make_tensor_value_info("x", F, [1, 16, 32])],
                              [helper.make_tensor_value_info("y", F, [1, 16, 32])], inits)
    return _model(graph, 13)


def _model(graph, opset: int) -> onnx.ModelProto:
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 21 else 10
    return m


def quantized(float_model: onnx.ModelProto, tmp: Path, *, fmt: str = "QDQ", activations: str = "QUInt8",
              samples: int = 16, op_types=None) -> Path:
    """``float_model`` through onnxruntime's ``quantize_static`` (MinMax, per-channel int8 weights);
    ``op_types``: only these op types quantized (``op_types_to_quantize``)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    src, dst = tmp / f"{float_model.graph.name}.onnx", tmp / f"{float_model.graph.name}_{fmt}_{activations}.onnx"
    onnx.save(float_model, str(src))
    shape = [d.dim_value for d in float_model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(3)
    data = iter([{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(samples)])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(data, None)

    extra = {"UseQDQContribOps": True} if activations in ("QInt16", "QUInt16") else {}
    quantize_static(str(src), str(dst), Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=getattr(QuantType, activations),
                    extra_options=extra, **({"op_types_to_quantize": list(op_types)} if op_types else {}))
    return dst


def hand_qdq(kind: str) -> onnx.ModelProto:
    """x -> Q/DQ -> Conv(DQ(weights)) -> Q/DQ -> y, with the weights quantized as ``kind`` says:
    ``int8`` (per output channel), ``int4`` (per output channel), ``uint4`` (zero point 8), ``blocked``
    (int4 blocks of 2 input channels); ``input`` makes the graph input int8. ``wrong_axis``: a MatMul whose
    weight scales run along its input axis (axis 0), not its output channels."""
    if kind == "wrong_axis":
        return _wrong_axis()
    rng = np.random.default_rng(7)
    w = rng.standard_normal((4, 6, 3, 3)).astype(np.float32)
    elem, axis, block = TensorProto.INT8, 0, 0
    if kind in ("int4", "uint4", "blocked"):
        elem = TensorProto.INT4 if kind != "uint4" else TensorProto.UINT4
        block = 2 if kind == "blocked" else 0
        axis = 1 if kind == "blocked" else 0
    qmax = {TensorProto.INT8: 127, TensorProto.INT4: 7, TensorProto.UINT4: 7}[elem]
    zp_value = 8 if elem == TensorProto.UINT4 else 0
    if block:
        scale = np.abs(w).reshape(4, 3, 2, 3, 3).max(axis=(2, 3, 4)) / qmax + 1e-3         # [4, 3]
        scale = np.broadcast_to(scale[:, :, None, None], (4, 3, 3, 3))     # the rank of the weights
        full = np.repeat(scale, 2, axis=1)
    else:
        other = tuple(a for a in range(4) if a != axis)
        scale = np.abs(w).max(axis=other) / qmax + 1e-3
        shape = [1] * 4
        shape[axis] = -1
        full = scale.reshape(shape)
    q = np.clip(np.round(w / full), -qmax, qmax).astype(np.int64) + zp_value
    wq = helper.make_tensor("wq", elem, list(w.shape), q.reshape(-1).tolist())
    zp = helper.make_tensor("wz", elem, list(scale.shape), np.full(scale.size, zp_value).tolist())
    attrs = {"axis": axis} if scale.ndim and not block else {}
    if block:
        attrs = {"axis": 1, "block_size": 2}
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], **attrs)]
    inits = [wq, zp, numpy_helper.from_array(scale.astype(np.float32), "ws"),
             numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(np.array(0.25, np.float32), "s2"), numpy_helper.from_array(np.array(0, np.int8), "z2")]
    if kind == "input":
        nodes += [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xd"])]
        x = helper.make_tensor_value_info("x", TensorProto.INT8, [1, 6, 8, 8])
    else:
        nodes += [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"])]
        x = helper.make_tensor_value_info("x", F, [1, 6, 8, 8])
    nodes += [helper.make_node("Conv", ["xd", "w"], ["c"], pads=[1, 1, 1, 1]),
              helper.make_node("QuantizeLinear", ["c", "s2", "z2"], ["cq"]),
              helper.make_node("DequantizeLinear", ["cq", "s2", "z2"], ["y"])]
    graph = helper.make_graph(nodes, f"hand_{kind}", [x], [helper.make_tensor_value_info("y", F, [1, 4, 8, 8])],
                              inits)
    return _model(graph, 21)


def _wrong_axis() -> onnx.ModelProto:
    rng = np.random.default_rng(8)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    scale = (np.abs(w).max(axis=1) / 127).astype(np.float32)                      # one per input row
    q = np.clip(np.round(w / scale[:, None]), -127, 127).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
             helper.make_node("MatMul", ["xd", "w"], ["m"]),
             helper.make_node("QuantizeLinear", ["m", "s2", "z"], ["mq"]),
             helper.make_node("DequantizeLinear", ["mq", "s2", "z"], ["y"])]
    inits = [numpy_helper.from_array(q, "wq"), numpy_helper.from_array(scale, "ws"),
             numpy_helper.from_array(np.zeros(6, np.int8), "wz"), numpy_helper.from_array(np.array(0.03, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"), numpy_helper.from_array(np.array(0.1, np.float32), "s2")]
    graph = helper.make_graph(nodes, "hand_wrong_axis", [helper.make_tensor_value_info("x", F, [1, 8, 6])],
                              [helper.make_tensor_value_info("y", F, [1, 8, 4])], inits)
    return _model(graph, 13)
