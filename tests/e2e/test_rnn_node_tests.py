"""The official ONNX backend node tests of LSTM, GRU and RNN (onnx 1.22.0) through `edgepack build --target
cpu`: the loader unrolls the node (the cpu target has no converter for it), LiteRT runs the bundle, and its
outputs match the tests' expected ones (computed by onnx's reference, batch-first layout included)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgepack.build import build
from edgepack.testing.node_tests import list_node_tests
from edgepack_runtime import Runtime

WEIGHT_SLOTS = (1, 2, 3, 4, 7)          # W, R, B, sequence_lens, P: initializers in exported models


def _cases():
    try:
        return [pytest.param(t, id=t.name) for t in list_node_tests({"LSTM", "GRU", "RNN"}) if not t.skip_reason]
    except Exception as exc:  # no network and no cache: a failure, never a run that passes on zero cases
        return [pytest.param(str(exc), id="node-tests-unavailable")]


@pytest.mark.parametrize("case", _cases())
def test_rnn_node_test_builds_and_matches(case, tmp_path):
    if isinstance(case, str):
        pytest.fail(f"no ONNX node tests to run: {case}", pytrace=False)
    inputs, expected = case.load_data()
    model = onnx.load(case.model)
    node = model.graph.node[0]
    frozen = {node.input[i] for i in WEIGHT_SLOTS if i < len(node.input) and node.input[i] in inputs}
    kept = [v for v in model.graph.input if v.name not in frozen]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.graph.initializer.extend(numpy_helper.from_array(inputs.pop(n), n) for n in sorted(frozen))
    onnx.save(model, tmp_path / "m.onnx")
    result = build(tmp_path / "m.onnx", targets=["cpu"], samples=[inputs], out=tmp_path / "b.edgepack")
    assert result.manifest["targets"][0]["parity"]["passed"]
    with Runtime.open(result.path) as rt:
        assert rt.backend_name == "litert"
        got = rt.run(inputs)
    assert len(expected) >= 1
    for name, want in expected.items():
        assert got[name].shape == want.shape
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=name)
