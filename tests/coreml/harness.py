"""Convert ONNX models with the coreml target's translator and run them in the MIL reference executor.

Numerics compare against onnxruntime on the fp32 model: fp32 programs tightly, fp16 programs (fp16
weights and activations, as Core ML runs them) by the error relative to each output's largest value.
"""
from __future__ import annotations

import numpy as np
import onnx

from edgepack.targets.coreml.convert import discard, lower, package, validate, zip_package
from tests.tflite.harness import random_feeds, run_onnx  # noqa: F401  (the same ONNX side as the tflite tests)

TOLERANCE = {"fp32": 1e-4, "fp16": 1.5e-2}   # max |got - ref| / max |ref|


def reference_executor():
    """The numpy MIL executor (the ``coreml-reference`` runtime backend)."""
    from edgepack_runtime.backends.coreml_ref import load
    return load


def convert(model: onnx.ModelProto, precision: str = "fp32", deployment: str = "iOS16"):
    """(zipped package bytes, spec, MIL program as loaded back and validated)."""
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    mlmodel = package(lower(model, deployment, precision), precision=precision, deployment=deployment)
    data = zip_package(mlmodel)
    discard(mlmodel)
    spec, program = validate(data)
    return data, spec, program


def op_types(program) -> dict[str, int]:
    counts: dict[str, int] = {}
    for op in program.functions["main"].operations:
        counts[op.op_type] = counts.get(op.op_type, 0) + 1
    return counts


def assert_converts(model: onnx.ModelProto, feeds=None, *, precisions=("fp32",), seeds=(0, 1),
                    tol: dict | None = None):
    """Convert at each precision, run a few inputs through the executor and onnxruntime, compare every
    output (shape, kind of dtype, relative max error). Returns the fp32 program."""
    load = reference_executor()
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    tol = {**TOLERANCE, **(tol or {})}
    first = None
    for precision in precisions:
        data, spec, program = convert(model, precision)
        first = first or program
        executor = load(data)
        core_names = [o.name for o in spec.description.output]
        for seed in seeds:
            x = feeds if feeds is not None else random_feeds(model, seed)
            ref = run_onnx(model, x)
            inputs = {s.name: np.reshape(x[v.name], tuple(s.type.multiArrayType.shape))
                      for v, s in zip(model.graph.input, spec.description.input)}
            got = executor.run(inputs)
            for (name, want), core in zip(ref.items(), core_names):
                have = np.asarray(got[core])
                assert have.shape == want.shape, f"{precision} {name}: shape {have.shape} != {want.shape}"
                if want.dtype.kind != "f":
                    np.testing.assert_array_equal(have.astype(want.dtype), want, err_msg=f"{precision} {name}")
                    continue
                scale = max(float(np.abs(want).max()), 1e-6)
                err = float(np.abs(have.astype(np.float64) - want).max()) / scale
                assert err <= tol[precision], f"{precision} {name}: relative max error {err:.3g} > {tol[precision]}"
    return first


def make(nodes, inputs: dict, outputs, inits=(), opset: int = 17, dtype=onnx.TensorProto.FLOAT):
    """A one-graph model: ``inputs`` name -> shape (or (shape, elem_type)), ``outputs`` names (shapes inferred)."""
    from onnx import helper as h
    ins = []
    for name, spec in inputs.items():
        shape, elem = (spec if isinstance(spec, tuple) and isinstance(spec[0], (list, tuple)) else (spec, dtype))
        ins.append(h.make_tensor_value_info(name, elem, list(shape)))
    outs = [h.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outputs]
    graph = h.make_graph(nodes, "t", ins, outs, list(inits))
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)


def weight(name: str, shape, seed: int = 0, scale: float = 1.0):
    from onnx import numpy_helper
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def as_input_or_init(kind: str, name: str, value: np.ndarray):
    """An operand given either as an initializer or as a graph input: (inputs entry, initializers)."""
    from onnx import helper as h
    from onnx import numpy_helper
    if kind == "init":
        return {}, [numpy_helper.from_array(value, name)]
    elem = h.np_dtype_to_tensor_dtype(value.dtype)
    return {name: (list(value.shape), elem)}, []
