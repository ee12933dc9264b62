"""Real tiny Qualcomm bundles for the qnn backend tests: a Conv+Relu model quantized with onnxruntime's own QNN
recipe (``get_qnn_qdq_config`` + ``quantize``), and EP-context models compiled on the HTP simulator."""
from __future__ import annotations

import importlib.util
import io
import tempfile
from pathlib import Path

import numpy as np

import pytest

from edgepack_runtime.bundle import write_bundle

HAVE_QNN = importlib.util.find_spec("onnxruntime_qnn") is not None
needs_qnn = pytest.mark.skipif(not HAVE_QNN, reason="onnxruntime-qnn is not installed (pip install onnxruntime-qnn)")

SHAPE_IN, SHAPE_OUT = [1, 3, 8, 8], [1, 8, 8, 8]


def float_model() -> bytes:
    """y = Relu(Conv3x3(x)) with fixed random weights, opset 13, static shapes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "W")
    b = numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE_IN)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE_OUT)], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def inputs(n: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(SHAPE_IN).astype(np.float32) for _ in range(n)]


def qdq_model(activations: str = "uint8") -> bytes:
    """The float model quantized for HTP by onnxruntime's recipe: int8 per-channel weights, uint8/uint16 activations."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter({"x": x} for x in inputs(8, seed=7))

        def get_next(self):
            return next(self._it, None)

    act = {"uint8": QuantType.QUInt8, "uint16": QuantType.QUInt16}[activations]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "f.onnx"), Path(tmp, "q.onnx")
        src.write_bytes(float_model())
        config = get_qnn_qdq_config(str(src), Reader(), activation_type=act, weight_type=QuantType.QInt8,
                                    per_channel=True)
        quantize(str(src), str(dst), config)
        return dst.read_bytes()


def compile_context(qdq: bytes, htp_arch: str = "75", soc_model: str = "57") -> bytes:
    """An EP-context model (QNN context binary embedded) compiled from ``qdq`` for HTP v``htp_arch``."""
    import onnxruntime as ort
    from edgepack_runtime.backends import qnn_ep
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "model.ctx.onnx")
        options = qnn_ep.session_options({"htp_arch": htp_arch, "soc_model": soc_model},
                                         config={"ep.context_enable": "1", "ep.context_embed_mode": "1",
                                                 "ep.context_file_path": str(out)})
        ort.InferenceSession(qdq, sess_options=options)
        return out.read_bytes()


def run_on_htp(model: bytes, feeds: list[np.ndarray], htp_arch: str | None = "75") -> list[np.ndarray]:
    """Outputs of ``model`` run straight on the QNN EP (the reference the runtime must reproduce)."""
    import onnxruntime as ort
    from edgepack_runtime.backends import qnn_ep
    options = qnn_ep.session_options({"htp_arch": htp_arch} if htp_arch else {})
    session = ort.InferenceSession(model, sess_options=options)
    return [session.run(None, {"x": x})[0] for x in feeds]


def run_on_cpu(model: bytes, feeds: list[np.ndarray], *, defined: bool = False) -> list[np.ndarray]:
    """onnxruntime's CPU provider with the runtime's options (``cpu_options``: fused int8 kernels unless they
    saturate on this CPU); ``defined``: no graph optimization at all, every Q/DQ as the model writes it."""
    import onnxruntime as ort
    from edgepack_runtime.backends.ort import cpu_options
    opts = cpu_options(model)
    if defined:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return [session.run(None, {"x": x})[0] for x in feeds]


def context_block(*, file="models/qualcomm/model.ctx.onnx", htp_arch="75", soc_model="57",
                  sdk_version=None) -> dict:
    from edgepack_runtime.backends import qnn_ep
    v = qnn_ep.versions() if sdk_version is None else {"qnn_sdk": None, "onnxruntime_qnn": "2.7.0"}
    return {"file": file, "htp_arch": htp_arch, "soc_model": soc_model,
            "sdk_version": sdk_version or f"v{v['qnn_sdk']}.260929181845", "ort_qnn": v["onnxruntime_qnn"]}


def qnn_block(context: dict | None, *, activations="uint8", reason=None) -> dict:
    return {"activations": activations, "weights": "int8", "per_channel": True,
            "versions": {"onnxruntime_qnn": "2.7.0", "qnn_sdk": "2.51.0", "onnxruntime": "1.32.0"},
            "context": context, "context_reason": reason,
            "placement": {"htp_nodes": 5, "cpu_nodes": 2, "fraction_on_htp": 5 / 7, "partitions": 1,
                          "cpu": [{"name": "x_QuantizeLinear", "op_type": "QuantizeLinear",
                                   "why": "graph input boundary"},
                                  {"name": "y_DequantizeLinear", "op_type": "DequantizeLinear",
                                   "why": "graph output boundary"}]},
            "overrides": {}}


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def manifest_and_files(qdq: bytes, qnn, *, ctx: bytes | None = None, precision="w8a8", samples=2,
                       extra_files: dict | None = None) -> tuple[dict, dict]:
    """A bundle's manifest (the real schema, as ``edgepack build`` writes it) and members for one qualcomm target."""
    files = {"models/qualcomm/model.qdq.onnx": qdq, **(extra_files or {})}
    if ctx is not None:
        files["models/qualcomm/model.ctx.onnx"] = ctx
    sample_files = []
    for i, (x, y) in enumerate(zip(inputs(samples, seed=3), run_on_cpu(float_model(), inputs(samples, seed=3)))):
        sample_files.append(f"samples/sample_{i:03d}.npz")
        files[sample_files[-1]] = npz(input_0=x, output_0=y)
    entry = {"name": "qualcomm", "format": "qnn", "file": "models/qualcomm/model.qdq.onnx", "precision": precision,
             "io": {"inputs": [{"name": "x", "perm": None}], "outputs": [{"name": "y", "perm": None}]},
             "parity": {}, "info": {"size": len(qdq)}, "devices": ["snapdragon-8-gen3"], "qnn": qnn}
    manifest = {"model": {"name": "conv", "version": "1", "source_sha256": "0" * 64, "opsets": {"ai.onnx": 13}},
                "created": "2026-01-01T00:00:00+00:00", "tools": {"edgepack": "0.1.0"},
                "inputs": [{"name": "x", "shape": SHAPE_IN, "dtype": "float32", "layout": None}],
                "outputs": [{"name": "y", "shape": SHAPE_OUT, "dtype": "float32", "layout": None}],
                "targets": [entry], "samples": [{"file": f} for f in sample_files], "signature": None}
    return manifest, files


def write(path, qdq: bytes, qnn, **kw) -> Path:
    manifest, files = manifest_and_files(qdq, qnn, **kw)
    return write_bundle(path, manifest, files)
