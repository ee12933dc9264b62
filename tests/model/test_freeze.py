"""--input-value: inputs frozen to constants, If nodes with constant conditions inlined, live Ifs explained."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from edgepack import targets
from edgepack.errors import ModelError, UnsupportedOpsError
from edgepack.model import load_model
from edgepack.model.freeze import frozen_inputs, parse_input_value, parse_input_values
from edgepack.model.inline_if import definitions
from edgepack.model.ort import run_model
from tests.model.kit import assert_normalized, model, op_types, save

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _branch(name: str, nodes, out: str, inits=()) -> onnx.GraphProto:
    return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, F, None)],
                             [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits])


def _mode_model() -> onnx.ModelProto:
    """y = mode == 1 ? (mode > 0 ? x + 1 : x) * 3 : x * 2, with the inner If nested in the then-branch,
    and a second If (on mode == 2) whose branches define the same names as the first one's."""
    inner = helper.make_node("If", ["pos"], ["inner"], name="inner_if",
                             then_branch=_branch("it", [helper.make_node("Add", ["x", "one"], ["t"])], "t",
                                                 [("one", 1.0)]),
                             else_branch=_branch("ie", [helper.make_node("Identity", ["x"], ["u"])], "u"))
    then = _branch("then", [helper.make_node("Greater", ["mode", "zero"], ["pos"]), inner,
                            helper.make_node("Mul", ["inner", "three"], ["t"])], "t", [("three", 3.0)])
    # names "t", "pos" and "inner" are defined in both Ifs' branches (siblings may reuse them)
    then2 = _branch("then2", [helper.make_node("Greater", ["mode", "zero"], ["pos"]),
                              helper.make_node("Sub", ["x", "x"], ["t"])], "t")
    else_ = _branch("else", [helper.make_node("Mul", ["x", "two"], ["t"])], "t", [("two", 2.0)])
    nodes = [helper.make_node("Equal", ["mode", "one_i"], ["cond"]),
             helper.make_node("If", ["cond"], ["y1"], name="outer_if", then_branch=then, else_branch=else_),
             helper.make_node("Equal", ["mode", "two_i"], ["cond2"]),
             helper.make_node("If", ["cond2"], ["y2"], name="second_if", then_branch=then2,
                              else_branch=_branch("else2", [helper.make_node("Neg", ["x"], ["t"])], "t")),
             helper.make_node("Add", ["y1", "y2"], ["y"])]
    return model(nodes, [("x", F, [2, 3]), ("mode", I64, [])], [("y", F, [2, 3])],
                 {"one_i": np.array(1, np.int64), "two_i": np.array(2, np.int64), "zero": np.array(0, np.int64)})


@pytest.mark.parametrize("mode", [1, 2, 5])
def test_frozen_mode_inlines_the_taken_branches_and_matches_onnxruntime(tmp_path, mode):
    original = _mode_model()
    onnx.checker.check_model(original, full_check=True)
    loaded = load_model(save(original, tmp_path), input_values={"mode": [str(mode)]})
    assert_normalized(loaded)
    assert [i.name for i in loaded.graph.input] == ["x"]
    assert "If" not in op_types(loaded)
    assert frozen_inputs(loaded) == [{"name": "mode", "dtype": "int64", "shape": [], "value": [mode]}]
    for seed in (1, 2, 3):
        x = np.random.default_rng(seed).standard_normal((2, 3)).astype(np.float32)
        want = run_model(original, {"x": x, "mode": np.array(mode, np.int64)})[0]
        got = run_model(loaded, {"x": x})[0]
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        expected = {1: (x + 1) * 3 + (-x), 2: x * 2 + 0 * x, 5: x * 2 - x}[mode]
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_names_defined_by_inlined_siblings_are_renamed_apart(tmp_path):
    """Inline without folding the rest away: both Ifs taken, their branches' "t" and "pos" kept distinct."""
    from edgepack.model.inline_if import inline_constant_ifs
    m = _mode_model()
    m.graph.initializer.extend([numpy_helper.from_array(np.array(True), "cond"),
                                numpy_helper.from_array(np.array(True), "cond2")])
    del m.graph.node[2]                              # the Equal making cond2 (now an initializer)
    del m.graph.node[0]                              # ... and cond
    assert inline_constant_ifs(m) == 2
    outputs = [o for n in m.graph.node for o in n.output]
    assert len(outputs) == len(set(outputs))         # still SSA
    assert {"t", "pos"} <= set(outputs) and len([o for o in outputs if o.endswith("/t")]) == 1
    assert op_types(m).count("If") == 1              # the nested one, now in the main graph
    onnx.checker.check_model(m, full_check=True)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = run_model(m, {"x": x, "mode": np.array(1, np.int64)})[0]
    np.testing.assert_allclose(got, (x + 1) * 3 + 0 * x)
    assert set(definitions(m.graph)) >= set(outputs)


def test_live_if_is_explained_with_the_input_it_reads(tmp_path):
    path = save(_mode_model(), tmp_path)
    with pytest.raises(UnsupportedOpsError) as err:
        load_model(path, preflight=targets.get("cpu").preflight)
    text = str(err.value)
    assert "outer_if" in text and "second_if" in text
    assert "depends on the live input(s) 'mode'" in text and "--input-value mode=VALUE" in text
    loaded = load_model(path)                       # without a target's preflight the If stays, valid
    assert op_types(loaded).count("If") == 2


def test_frozen_model_builds_for_cpu_and_records_the_value(tmp_path):
    from edgepack.build import build
    result = build(save(_mode_model(), tmp_path), targets=["cpu"], input_values={"mode": ["1"]},
                   out=tmp_path / "m.edgepack")
    m = result.manifest
    assert [i["name"] for i in m["inputs"]] == ["x"]
    assert m["frozen_inputs"] == [{"name": "mode", "dtype": "int64", "shape": [], "value": [1]}]
    assert m["targets"][0]["parity"]["passed"] and m["targets"][0]["parity"]["min_cosine"] > 0.99999


@pytest.mark.parametrize("elem,values,shape,expected", [
    (F, ["0.5"], [2, 2], np.full((2, 2), 0.5, np.float32)),             # one value fills the shape
    (F, ["1", "2", "3"], ["n"], np.array([1, 2, 3], np.float32)),       # the dynamic dim takes the count
    (I64, ["1", "2", "3", "4"], [2, "n"], np.array([[1, 2], [3, 4]], np.int64)),
    (TensorProto.BOOL, ["true"], [], np.array(True)),
    (TensorProto.INT8, ["-128", "127"], [2], np.array([-128, 127], np.int8)),
])
def test_values_take_the_inputs_dtype_and_shape(tmp_path, elem, values, shape, expected):
    m = model([helper.make_node("Identity", ["v"], ["o"]), helper.make_node("Identity", ["x"], ["y"])],
              [("v", elem, shape), ("x", F, [1])], [("o", elem, shape), ("y", F, [1])])
    loaded = load_model(save(m, tmp_path), input_values={"v": values})
    assert [i.name for i in loaded.graph.input] == ["x"]
    got = numpy_helper.to_array(next(t for t in loaded.graph.initializer if t.name == "v"))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("elem,shape,values,message", [
    (I64, [], ["16000.5"], "is not an integer"),
    (TensorProto.UINT8, [], ["300"], "outside uint8"),
    (TensorProto.BOOL, [], ["maybe"], "is not a bool"),
    (F, [], ["abc"], "is not a number"),
    (F, [3], ["1", "2"], "needs 3 value(s)"),
    (F, ["a", "b"], ["1", "2"], "dynamic dims fixed first"),
    (TensorProto.STRING, [], ["a"], "cannot write"),
])
def test_bad_values_are_refused_clearly(tmp_path, elem, shape, values, message):
    m = model([helper.make_node("Identity", ["x"], ["y"])], [("x", F, [1]), ("v", elem, shape)],
              [("y", F, [1])])
    with pytest.raises(ModelError) as err:
        load_model(save(m, tmp_path), input_values={"v": values})
    assert message in str(err.value) and "'v'" in str(err.value)


def test_unknown_input_lists_the_real_ones(tmp_path):
    with pytest.raises(ModelError) as err:
        load_model(save(_mode_model(), tmp_path), input_values={"rate": ["1"]})
    assert "no input named 'rate'" in str(err.value) and "'mode'" in str(err.value)


def test_parse_forms_and_errors():
    assert parse_input_value("sr=16000") == ("sr", ["16000"])
    assert parse_input_value(" a=b = 1, 2 ,3") == ("a=b", ["1", "2", "3"])   # split on the last '='
    assert parse_input_values(["a=1", "b=2,3"]) == {"a": ["1"], "b": ["2", "3"]}
    for bad in ("16000", "=1", "sr=", "sr=1,,2"):
        with pytest.raises(ModelError):
            parse_input_value(bad)
    with pytest.raises(ModelError, match="twice"):
        parse_input_values(["a=1", "a=2"])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parse_never_fails_other_than_cleanly(text):
    try:
        name, values = parse_input_value(text)
    except ModelError:
        return
    assert name and values and all(v and v == v.strip() for v in values)
