"""Small ONNX models built with onnx.helper, and the onnxruntime equality check used by the tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgepack.model import make_inputs
from edgepack.model.graphutil import is_complete
from edgepack.model.ort import run_model

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=13, ir_version=None, **kw) -> onnx.ModelProto:
    """A model from nodes, ValueInfos (or (name, elem, shape) triples) and {name: array} initializers."""
    def vi(x):
        return x if isinstance(x, onnx.ValueInfoProto) else helper.make_tensor_value_info(*x)
    graph = helper.make_graph(nodes, "g", [vi(i) for i in inputs], [vi(o) for o in outputs],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kw)
    m.ir_version = ir_version or min(m.ir_version, 8)
    return m


def save(m: onnx.ModelProto, tmp_path: Path, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    onnx.save_model(m, str(path))
    return path


def op_types(m: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in m.graph.node]


def assert_normalized(loaded: onnx.ModelProto) -> None:
    """Checker passes, every intermediate has a static value_info, no initializer is an input."""
    onnx.checker.check_model(loaded, full_check=True)
    graph = loaded.graph
    infos = {v.name: v for v in graph.value_info}
    infos.update({o.name: o for o in graph.output})
    for node in graph.node:
        for name in node.output:
            assert name in infos and is_complete(infos[name]), f"{name} lacks a static value_info"
    weights = {t.name for t in graph.initializer}
    assert not weights & {i.name for i in graph.input}
    assert not weights & {v.name for v in graph.value_info}


def assert_same_outputs(original: onnx.ModelProto, loaded: onnx.ModelProto, n: int = 2,
                        rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Both models give the same outputs in onnxruntime on ``n`` different synthetic inputs."""
    for feeds in make_inputs(loaded, n, seed=7):
        want = run_model(original, feeds)
        got = run_model(loaded, feeds)
        assert len(want) == len(got) == len(loaded.graph.output)
        for w, g in zip(want, got):
            assert w.dtype == g.dtype and w.shape == g.shape
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
