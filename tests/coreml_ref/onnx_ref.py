"""One-node ONNX models run in onnxruntime: an independent reference for the MIL ops."""
from __future__ import annotations

import numpy as np


def run_node(op_type: str, inputs: dict, attrs: dict | None = None, initializers: dict | None = None,
             n_outputs: int = 1, opset: int = 17) -> list[np.ndarray]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in (initializers or {}).items()]
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, list(inputs) + list(initializers or {}), outs, **(attrs or {}))
    graph = helper.make_graph(
        [node], "ref", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                        for n, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(inputs))
