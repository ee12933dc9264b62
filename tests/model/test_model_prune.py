"""Identity/Dropout removal with stable output names, dead code and unused optional outputs."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from edgepack.model import load_model
from tests.model.kit import F, assert_normalized, assert_same_outputs, model, op_types, save


def _load(m, tmp_path):
    loaded = load_model(save(m, tmp_path))
    assert_normalized(loaded)
    assert_same_outputs(m, loaded)
    assert [o.name for o in loaded.graph.output] == [o.name for o in m.graph.output]
    return loaded


def test_inner_identity_removed(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["i"]),
             helper.make_node("Neg", ["i"], ["y"])]
    loaded = _load(model(nodes, [("x", F, [3])], [("y", F, [3])]), tmp_path)
    assert op_types(loaded) == ["Relu", "Neg"]
    assert list(loaded.graph.node[1].input) == ["r"]


def test_identity_at_output_renames_producer(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"]),
             helper.make_node("Neg", ["r"], ["z"])]
    loaded = _load(model(nodes, [("x", F, [3])], [("y", F, [3]), ("z", F, [3])]), tmp_path)
    assert op_types(loaded) == ["Relu", "Neg"]
    assert list(loaded.graph.node[0].output) == ["y"] and list(loaded.graph.node[1].input) == ["y"]


def test_identity_from_input_to_output_stays(tmp_path):
    nodes = [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])]
    loaded = _load(model(nodes, [("x", F, [3])], [("y", F, [3]), ("z", F, [3])]), tmp_path)
    assert op_types(loaded) == ["Identity", "Neg"]


def test_identity_between_two_outputs_stays(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["b"])]
    loaded = _load(model(nodes, [("x", F, [3])], [("a", F, [3]), ("b", F, [3])]), tmp_path)
    assert op_types(loaded) == ["Relu", "Identity"]


def test_dropout_opset9_removed(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Dropout", ["r"], ["d", "mask"], ratio=0.5),
             helper.make_node("Neg", ["d"], ["y"])]
    loaded = _load(model(nodes, [("x", F, [4])], [("y", F, [4])], opset=9), tmp_path)
    assert op_types(loaded) == ["Relu", "Neg"]


def test_dropout_opset13_with_false_training_mode_at_output(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Dropout", ["r", "ratio", "train"], ["y"])]
    inits = {"ratio": np.array(0.3, np.float32), "train": np.array(False)}
    loaded = _load(model(nodes, [("x", F, [4])], [("y", F, [4])], inits), tmp_path)
    assert op_types(loaded) == ["Relu"] and list(loaded.graph.node[0].output) == ["y"]
    assert not loaded.graph.initializer


def test_dropout_with_used_mask_stays(tmp_path):
    nodes = [helper.make_node("Dropout", ["x"], ["y", "mask"])]
    m = model(nodes, [("x", F, [4])], [("y", F, [4]), ("mask", TensorProto.BOOL, [4])])
    assert op_types(_load(m, tmp_path)) == ["Dropout"]


def test_dropout_from_input_to_output_becomes_identity(tmp_path):
    nodes = [helper.make_node("Dropout", ["x"], ["y"])]
    loaded = _load(model(nodes, [("x", F, [4])], [("y", F, [4])]), tmp_path)
    assert op_types(loaded) == ["Identity"] and not loaded.graph.node[0].attribute


def test_dead_nodes_and_unused_initializers_dropped(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["r"], ["unused"]),
             helper.make_node("Mul", ["unused", "w_dead"], ["unused2"]),
             helper.make_node("Add", ["r", "w"], ["y"])]
    inits = {"w": np.ones(3, np.float32), "w_dead": np.ones(3, np.float32),
             "never_read": np.zeros(5, np.float32)}
    loaded = _load(model(nodes, [("x", F, [3])], [("y", F, [3])], inits), tmp_path)
    assert op_types(loaded) == ["Relu", "Add"]
    assert [t.name for t in loaded.graph.initializer] == ["w"]
    assert {v.name for v in loaded.graph.value_info} == {"r"}


def test_unused_optional_outputs_trimmed(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["p", "idx"], kernel_shape=[2, 2], strides=[2, 2])]
    loaded = _load(model(nodes, [("x", F, [1, 1, 4, 4])], [("p", F, [1, 1, 2, 2])], opset=12), tmp_path)
    assert list(loaded.graph.node[0].output) == ["p"]


def test_nodes_get_unique_names(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="Neg_1"), helper.make_node("Neg", ["a"], ["b"]),
             helper.make_node("Abs", ["b"], ["y"])]
    loaded = _load(model(nodes, [("x", F, [3])], [("y", F, [3])]), tmp_path)
    names = [n.name for n in loaded.graph.node]
    assert names[0] == "Neg_1" and len(set(names)) == 3 and all(names)


def test_wrong_declared_output_shape_is_corrected(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2])]
    loaded = load_model(save(model(nodes, [("x", F, [1, 1, 4, 4])], [("y", F, [1, 1, 2, 2])]), tmp_path))
    assert [d.dim_value for d in loaded.graph.output[0].type.tensor_type.shape.dim] == [1, 1, 3, 3]


def test_subgraph_reads_of_outer_names_survive(tmp_path):
    """An If branch reads 'i' from the outer graph: removing the Identity must rename it there too."""
    then_g = helper.make_graph([helper.make_node("Neg", ["i"], ["t_out"])], "then", [],
                               [helper.make_tensor_value_info("t_out", F, [3])])
    else_g = helper.make_graph([helper.make_node("Abs", ["i"], ["e_out"])], "else", [],
                               [helper.make_tensor_value_info("e_out", F, [3])])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["i"]),
             helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Sigmoid", ["x"], ["dead"])]
    m = model(nodes, [("x", F, [3])], [("y", F, [3])], {"zero": np.array(0, np.float32)})
    loaded = _load(m, tmp_path)
    assert op_types(loaded) == ["Relu", "ReduceSum", "Greater", "If"]
    branch = loaded.graph.node[3].attribute[0].g
    assert list(branch.node[0].input) == ["r"]


def test_shape_and_dtype_preserving_nodes_removed(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "same"], ["a"]),
             helper.make_node("Expand", ["a", "same"], ["b"]),
             helper.make_node("Cast", ["b"], ["c"], to=F),
             helper.make_node("Transpose", ["c"], ["d"], perm=[0, 1]),
             helper.make_node("Transpose", ["d"], ["e"], perm=[1, 0]),
             helper.make_node("Unsqueeze", ["e", "axis0"], ["u"]),
             helper.make_node("Neg", ["u"], ["y"])]
    inits = {"same": np.array([3, 3], np.int64), "axis0": np.array([0], np.int64)}
    loaded = _load(model(nodes, [("x", F, [3, 3])], [("y", F, [1, 3, 3])], inits), tmp_path)
    assert op_types(loaded) == ["Relu", "Transpose", "Unsqueeze", "Neg"]
    assert list(loaded.graph.node[1].input) == ["r"]
