"""Small real models and bundles for the runtime tests (ONNX via onnx.helper, TFLite via flatbuffers)."""
from __future__ import annotations

import io

import numpy as np

from edgepack_runtime.bundle import write_bundle

BIAS = np.array([10.0, 20.0], dtype=np.float32)   # per-channel constant added by the "add" models
NCHW = [1, 2, 3, 4]
TO_NHWC = [0, 2, 3, 1]


def onnx_add_model(shape=NCHW, bias=BIAS) -> bytes:
    """ONNX: y = x + bias[channel], NCHW."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    c = numpy_helper.from_array(bias.reshape(1, -1, 1, 1), "bias")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "bias"], ["y"])], "add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnx_two_io_model() -> bytes:
    """ONNX with inputs (a, b) and outputs (diff = a - b, prod = a * b), all float32 [2, 3]."""
    from onnx import TensorProto, helper
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3])  # noqa: E731
    graph = helper.make_graph(
        [helper.make_node("Sub", ["a", "b"], ["diff"]), helper.make_node("Mul", ["a", "b"], ["prod"])],
        "two", [vi("a"), vi("b")], [vi("diff"), vi("prod")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def tflite_add_model(nhwc_shape=(1, 3, 4, 2), bias=BIAS, dynamic_batch=False) -> bytes:
    """TFLite: y = x + bias (broadcast over the last axis), NHWC, one ADD op."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def tensor(name, shape, buffer):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), list(shape), s.TensorType.FLOAT32, buffer
        if dynamic_batch and len(shape) == 4:
            t.shapeSignature = [-1, *shape[1:]]
        return t

    const = s.BufferT()
    const.data = np.frombuffer(bias.astype("<f4").tobytes(), dtype=np.uint8)
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType, op.builtinOptions = s.BuiltinOptions.AddOptions, s.AddOptionsT()
    graph = s.SubGraphT()
    graph.tensors = [tensor("x", nhwc_shape, 0), tensor("bias", bias.shape, 1), tensor("y", nhwc_shape, 0)]
    graph.inputs, graph.outputs, graph.operators = [0], [2], [op]
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.ADD
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [s.BufferT(), const]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def tensor(name, shape, dtype="float32", layout=None):
    return {"name": name, "shape": list(shape), "dtype": dtype, "layout": layout}


def target(name, fmt, file, inputs, outputs, precision="fp32"):
    """A target entry; ``inputs``/``outputs`` are (public name, perm or None) in model order."""
    return {"name": name, "format": fmt, "file": file, "precision": precision,
            "io": {"inputs": [{"name": n, "perm": p} for n, p in inputs],
                   "outputs": [{"name": n, "perm": p} for n, p in outputs]},
            "parity": {}, "info": {}}


def base_manifest(inputs, outputs, targets, samples=()):
    return {"model": {"name": "tiny", "version": "1", "source_sha256": "0" * 64, "opsets": {"": 17}},
            "created": "2025-01-01T00:00:00Z", "tools": {"edgepack": "0.1.0"},
            "inputs": inputs, "outputs": outputs, "targets": targets,
            "samples": [{"file": f} for f in samples]}


def add_bundle(path, *, tflite=True, onnx=True, samples=2, dynamic_batch=False, sample_bias=BIAS,
               precision="fp32"):
    """Bundle of the y = x + bias model: target "cpu" (TFLite, NHWC inside) and/or "ref" (ONNX)."""
    files, targets = {}, []
    if tflite:
        files["models/cpu/model.tflite"] = tflite_add_model(dynamic_batch=dynamic_batch)
        targets.append(target("cpu", "tflite", "models/cpu/model.tflite",
                              [("x", TO_NHWC)], [("y", TO_NHWC)], precision))
    if onnx:
        files["models/ref/model.onnx"] = onnx_add_model()
        targets.append(target("ref", "onnx", "models/ref/model.onnx", [("x", None)], [("y", None)],
                              precision))
    rng = np.random.default_rng(0)
    names = []
    for i in range(samples):
        x = rng.standard_normal(NCHW).astype(np.float32)
        names.append(f"samples/sample_{i:03d}.npz")
        files[names[-1]] = npz_bytes(input_0=x, output_0=x + sample_bias.reshape(1, -1, 1, 1))
    shape = [-1, 2, 3, 4] if dynamic_batch else NCHW
    manifest = base_manifest([tensor("x", shape, layout="NCHW")], [tensor("y", shape, layout="NCHW")],
                             targets, names)
    return write_bundle(path, manifest, files)


def two_io_bundle(path):
    """ONNX bundle whose manifest lists inputs (b, a), in the opposite order from the model."""
    files = {"models/ref/model.onnx": onnx_two_io_model()}
    manifest = base_manifest([tensor("b", [2, 3]), tensor("a", [2, 3])],
                             [tensor("prod", [2, 3]), tensor("diff", [2, 3])],
                             [target("ref", "onnx", "models/ref/model.onnx", [("a", None), ("b", None)],
                                     [("diff", None), ("prod", None)])])
    return write_bundle(path, manifest, files)
