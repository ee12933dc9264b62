"""LSTM / GRU / RNN unrolled into primitive ops (edgepack.model.rnn) equal onnxruntime's own kernels."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepack import targets
from edgepack.errors import ModelError, UnsupportedOpsError
from edgepack.model import load_model
from edgepack.model.infer import infer_shapes
from edgepack.model.ort import run_model
from edgepack.model.rnn import RNN_OPS, decompose_rnns
from tests.model.kit import save
from tests.model.rnn_kit import feeds_for, rnn_model

PRIMITIVES = {"Gemm", "Add", "Sub", "Mul", "Sigmoid", "Tanh", "Relu", "Slice", "Squeeze", "Unsqueeze", "Concat",
              "Clip"}


def _decomposed(m: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(m)
    infer_shapes(out)
    assert decompose_rnns(out) == {}
    onnx.checker.check_model(out, full_check=True)
    return out


def _reference(m: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    """onnxruntime's own kernel; onnx's reference evaluator for batch-first nodes (onnxruntime's CPU RNN
    kernels refuse layout=1)."""
    if any(a.name == "layout" and a.i == 1 for a in m.graph.node[0].attribute):
        from onnx.reference import ReferenceEvaluator
        return ReferenceEvaluator(m).run(None, feeds)
    return run_model(m, feeds)


def _assert_same(m: onnx.ModelProto, seeds=(1, 2)) -> onnx.ModelProto:
    d = _decomposed(m)
    assert {n.op_type for n in d.graph.node} <= PRIMITIVES
    for seed in seeds:
        feeds = feeds_for(m, seed)
        want, got = _reference(m, feeds), run_model(d, feeds)
        assert len(want) == len(got) == len(m.graph.output)
        for w, g in zip(want, got):
            assert w.shape == g.shape
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    return d


@pytest.mark.parametrize("kind", RNN_OPS)
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("steps,batch", [(1, 1), (5, 2)])
@pytest.mark.parametrize("bias,initial,layout", [(True, True, 0), (False, False, 0), (True, False, 0), (True, True, 1)])
def test_unrolled_equals_onnxruntime(kind, direction, steps, batch, bias, initial, layout):
    _assert_same(rnn_model(kind, steps, batch, 3, 4, direction, bias=bias, initial=initial,
                           peepholes=bias, linear_before_reset=int(initial), layout=layout))


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(RNN_OPS), direction=st.sampled_from(["forward", "reverse", "bidirectional"]),
       steps=st.integers(1, 4), batch=st.integers(1, 3), size=st.integers(1, 5), hidden=st.integers(1, 5),
       bias=st.booleans(), initial=st.booleans(), peep=st.booleans(), lbr=st.integers(0, 1),
       opset=st.sampled_from([9, 11, 13, 17]), outputs=st.sampled_from([("Y",), ("Y_h",), ("Y", "Y_h", "Y_c")]),
       layout=st.integers(0, 1), clip=st.sampled_from([None, 0.5, 3.0]), seed=st.integers(0, 2**16))
def test_property_any_shape_and_direction(kind, direction, steps, batch, size, hidden, bias, initial, peep, lbr,
                                          opset, outputs, layout, clip, seed):
    layout = layout if opset >= 14 else 0                   # the attribute exists from opset 14
    clip = clip if layout == 0 else None                    # onnx's reference (layout 1's judge) ignores clip
    m = rnn_model(kind, steps, batch, size, hidden, direction, bias=bias, initial=initial, peepholes=peep,
                  linear_before_reset=lbr, opset=opset, seed=seed, outputs=outputs, layout=layout,
                  **({} if clip is None else {"clip": clip}))
    _assert_same(m, seeds=(seed,))


def test_names_follow_the_node_and_the_weights_are_shared_by_the_steps():
    d = _assert_same(rnn_model("LSTM", 3, 1, 2, 3, "bidirectional"))
    names = [n.name for n in d.graph.node]
    assert "rnn/step0/gates" in names and "rnn/step2/h" in names and "rnn/back/step0/h" in names
    gemm_weights = {n.input[1] for n in d.graph.node if n.op_type == "Gemm"}
    assert gemm_weights == {"rnn/W", "rnn/R", "rnn/back/W", "rnn/back/R"}    # one copy per direction
    assert [t.name for t in d.graph.initializer if t.name in ("W", "R", "B")] == ["W", "R", "B"]


@pytest.mark.parametrize("kind", RNN_OPS)
@pytest.mark.parametrize("opset", [9, 17])
def test_clip_bounds_the_gate_inputs_as_onnxruntime_does(kind, opset):
    m = rnn_model(kind, 3, 2, 3, 4, "bidirectional", peepholes=True, clip=0.7, opset=opset)
    unclipped = rnn_model(kind, 3, 2, 3, 4, "bidirectional", peepholes=True, opset=opset)
    feeds = feeds_for(m)
    assert not np.allclose(run_model(m, feeds)[0], run_model(unclipped, feeds)[0], atol=1e-3)   # it bites
    d = _assert_same(m)
    assert "Clip" in {n.op_type for n in d.graph.node}


@pytest.mark.parametrize("peepholes", [False, True])
def test_input_forget_couples_the_gates_as_onnxruntime_does(peepholes):
    m = rnn_model("LSTM", 3, 2, 3, 4, "bidirectional", peepholes=peepholes, input_forget=1)
    feeds = feeds_for(m)
    assert not np.allclose(run_model(m, feeds)[0], run_model(rnn_model("LSTM", 3, 2, 3, 4, "bidirectional",
                                                                       peepholes=peepholes), feeds)[0], atol=1e-3)
    _assert_same(m)


def test_zero_initial_state_has_no_recurrent_product_at_step_0():
    d = _assert_same(rnn_model("LSTM", 1, 2, 3, 4, initial=False))
    assert [n.op_type for n in d.graph.node].count("Gemm") == 1


@pytest.mark.parametrize("attrs,words", [
    ({"clip": -1.0}, "clip=-1.0"), ({"layout": 2}, "layout=2"),
    ({"activations": ["Sigmoid", "Elu", "Tanh"]}, "['Elu'] are not supported"),
])
def test_refused_settings_name_the_node(attrs, words):
    m = rnn_model("LSTM", 2, 1, 3, 4, **attrs)
    infer_shapes(m)
    with pytest.raises(ModelError) as err:
        decompose_rnns(m)
    assert "LSTM node 'rnn'" in str(err.value) and words in str(err.value)
    assert decompose_rnns(m, strict=False) == {"rnn": err.value.message.split("primitive ops: ")[1]}
    assert [n.op_type for n in m.graph.node] == ["LSTM"]             # kept as it was


def test_dynamic_sequence_length_says_to_fix_it_with_input_shape():
    m = rnn_model("GRU", 2, 1, 3, 4)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "T"
    infer_shapes(m)
    with pytest.raises(ModelError) as err:
        decompose_rnns(m)
    assert "GRU node 'rnn'" in str(err.value) and "--input-shape" in str(err.value) + err.value.hint


def test_sequence_lens_equal_to_the_length_are_accepted_and_others_refused():
    from onnx import numpy_helper
    m = rnn_model("RNN", 3, 2, 2, 2, bias=True)
    m.graph.node[0].input[4:5] = ["lens"] if len(m.graph.node[0].input) > 4 else []
    m.graph.node[0].input.extend([] if len(m.graph.node[0].input) > 4 else ["lens"])
    m.graph.initializer.append(numpy_helper.from_array(np.array([3, 3], np.int32), "lens"))
    _assert_same(m)
    m.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.array([3, 1], np.int32), "lens"))
    infer_shapes(m)
    with pytest.raises(ModelError, match=r"sequence_lens \[3, 1\] differ"):
        decompose_rnns(m)


def test_loader_decomposes_what_the_target_refuses_and_keeps_it_otherwise(tmp_path):
    path = save(rnn_model("LSTM", 2, 1, 3, 4, "bidirectional"), tmp_path)
    cpu = targets.get("cpu").preflight
    loaded = load_model(path, preflight=cpu)
    assert "LSTM" not in {n.op_type for n in loaded.graph.node}
    feeds = feeds_for(onnx.load(str(path)))
    for w, g in zip(run_model(onnx.load(str(path)), feeds), run_model(loaded, feeds)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    kept = load_model(path)                              # no target check (the onnx target runs LSTM)
    assert [n.op_type for n in kept.graph.node] == ["LSTM"]


def test_loader_says_why_a_refused_lstm_stayed(tmp_path):
    path = save(rnn_model("LSTM", 2, 1, 3, 4, activations=["Sigmoid", "Softsign", "Tanh"]), tmp_path)
    with pytest.raises(UnsupportedOpsError) as err:
        load_model(path, preflight=targets.get("cpu").preflight)
    [problem] = err.value.problems
    assert problem["node"] == "rnn" and "cannot be decomposed" in problem["reason"]
    assert "['Softsign'] are not supported" in problem["reason"]


@pytest.mark.parametrize("target,unrolled", [("cpu", True), ("coreml", True), ("qualcomm", False), ("onnx", False)])
def test_each_target_gets_the_lstm_it_can_run(target, unrolled, tmp_path):
    """Targets without an LSTM converter get it unrolled; HTP (measured: the Silero VAD's LSTM runs wholly on it)
    and the onnx target keep the node."""
    path = save(rnn_model("LSTM", 3, 1, 3, 4, "bidirectional"), tmp_path)
    loaded = load_model(path, preflight=targets.get(target).preflight)
    assert ("LSTM" not in {n.op_type for n in loaded.graph.node}) == unrolled
