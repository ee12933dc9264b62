"""Run converted TFLite models in the real LiteRT interpreter and compare with onnxruntime.

Converter-level helpers for op tests; end-to-end tests go through ``edgepack build`` and the runtime.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter

from edgepack.targets.tflite import TFLiteModel, convert


def run_tflite(result: TFLiteModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feed public-layout arrays (applying the bundle ``io`` perms) and return public-layout outputs."""
    it = Interpreter(model_content=result.data)
    it.allocate_tensors()
    for det, io in zip(it.get_input_details(), result.io["inputs"]):
        x = np.asarray(feeds[io["name"]])
        if io["perm"]:
            x = np.transpose(x, io["perm"])
        it.set_tensor(det["index"], np.require(x, requirements="C"))  # keeps 0-d inputs 0-d
    it.invoke()
    out = {}
    for det, io in zip(it.get_output_details(), result.io["outputs"]):
        y = it.get_tensor(det["index"])
        if io["perm"]:
            y = np.transpose(y, np.argsort(io["perm"]))
        out[io["name"]] = y
    return out


def run_onnx(model: onnx.ModelProto, feeds) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def random_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    inits = {i.name for i in model.graph.initializer}
    for i in model.graph.input:
        if i.name in inits:
            continue
        t = i.type.tensor_type
        shape = [d.dim_value for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[i.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[i.name] = rng.random(shape) > 0.5
        else:
            feeds[i.name] = rng.integers(0, 5, shape).astype(dtype)
    return feeds


def assert_converts(model: onnx.ModelProto, feeds=None, *, rtol=1e-4, atol=1e-4, max_transposes=None):
    """Convert (after shape inference), run both, and assert every output matches. Returns the result."""
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    feeds = random_feeds(model) if feeds is None else feeds
    result = convert(model)
    got = run_tflite(result, feeds)
    ref = run_onnx(model, feeds)
    for name, want in ref.items():
        have = got[name]
        assert have.shape == want.shape, f"{name}: shape {have.shape} != {want.shape}"
        assert have.dtype == want.dtype, f"{name}: dtype {have.dtype} != {want.dtype}"
        np.testing.assert_allclose(have, want, rtol=rtol, atol=atol, err_msg=name)
    if max_transposes is not None:
        assert result.stats["transpose_count"] <= max_transposes, result.stats
    return result
