"""Layout: shape and data-movement ops between convs keep the model NHWC with no TRANSPOSE ops."""
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from .harness import assert_converts

RNG = np.random.default_rng(5)
C = 8


def _w(name, shape):
    return nh.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def _i64(name, values):
    return nh.from_array(np.asarray(values, np.int64), name)


def _sandwich(middle, inits, cin2=C, opset=18, x_shape=(1, 3, 8, 8)):
    """Conv(x) -> r (N, C, 8, 8) -> ``middle`` -> m -> Conv -> y."""
    nodes = [h.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c1"], ["r"])]
    nodes += middle + [h.make_node("Conv", ["m", "W2"], ["y"], pads=[1, 1, 1, 1])]
    inits = [_w("W1", (C, x_shape[1], 3, 3)), _w("W2", (4, cin2, 3, 3))] + list(inits)
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, list(x_shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


SANDWICHES = {
    "concat_channels": ([h.make_node("Neg", ["r"], ["n"]), h.make_node("Concat", ["r", "n"], ["m"], axis=1)], [],
                        2 * C),
    "concat_const": ([h.make_node("Concat", ["r", "k"], ["m"], axis=1)], [_w("k", (1, 2, 8, 8))], C + 2),
    "split_concat": ([h.make_node("Split", ["r"], ["a", "b"], axis=1, num_outputs=2),
                      h.make_node("Sigmoid", ["b"], ["s"]), h.make_node("Mul", ["a", "s"], ["g"]),
                      h.make_node("Concat", ["g", "a"], ["m"], axis=1)], [], C),
    "split_spatial": ([h.make_node("Split", ["r", "sp"], ["a", "b"], axis=3),
                       h.make_node("Add", ["a", "b"], ["m"])], [_i64("sp", [4, 4])], C),
    "slice_channels": ([h.make_node("Slice", ["r", "s", "e", "a"], ["m"])],
                       [_i64("s", [2]), _i64("e", [6]), _i64("a", [1])], 4),
    "slice_strided": ([h.make_node("Slice", ["r", "s", "e", "a", "st"], ["m"])],
                      [_i64("s", [7, 0]), _i64("e", [-100, 8]), _i64("a", [2, 3]), _i64("st", [-2, 2])], C),
    "pad_constant": ([h.make_node("Pad", ["r", "p"], ["m"])], [_i64("p", [0, 0, 1, 2, 0, 0, 2, 1])], C),
    "pad_reflect": ([h.make_node("Pad", ["r", "p"], ["m"], mode="reflect")], [_i64("p", [0, 0, 1, 2, 0, 0, 2, 1])], C),
    "pad_edge": ([h.make_node("Pad", ["r", "p"], ["m"], mode="edge")], [_i64("p", [0, 0, 1, 2, 0, 0, 2, 1])], C),
    "pad_channels": ([h.make_node("Pad", ["r", "p"], ["m"])], [_i64("p", [0, 1, 0, 0, 0, 2, 0, 0])], C + 3),
    "tile": ([h.make_node("Tile", ["r", "t"], ["m"])], [_i64("t", [1, 2, 1, 2])], 2 * C),
    "expand": ([h.make_node("ReduceMean", ["r", "ax"], ["g"], keepdims=1),
                h.make_node("Expand", ["g", "sh"], ["e"]), h.make_node("Add", ["e", "r"], ["m"])],
               [_i64("ax", [2, 3]), _i64("sh", [1, C, 8, 8])], C),
    "gather_channels": ([h.make_node("Gather", ["r", "i"], ["m"], axis=1)], [_i64("i", [7, 0, -1, 3, 3])], 5),
    "gather_rows": ([h.make_node("Gather", ["r", "i"], ["m"], axis=2)], [_i64("i", [0, 2, 4, 6])], C),
    "depth_to_space_crd": ([h.make_node("DepthToSpace", ["r"], ["m"], blocksize=2, mode="CRD")], [], C // 4),
    "space_to_depth": ([h.make_node("SpaceToDepth", ["r"], ["m"], blocksize=2)], [], 4 * C),
    "upsample_by_tile_and_reshape": ([h.make_node("Unsqueeze", ["r", "u"], ["un"]),
                                      h.make_node("Expand", ["un", "sh"], ["ex"]),
                                      h.make_node("Reshape", ["ex", "rs"], ["m"])],
                                     [_i64("u", [3, 5]), _i64("sh", [1, C, 8, 2, 8, 2]),
                                      _i64("rs", [1, C, 16, 16])], C),
}


@pytest.mark.parametrize("name", [n for n in SANDWICHES if n != "upsample_by_tile_and_reshape"])
def test_conv_op_conv_has_no_transposes(name):
    middle, inits, cin2 = SANDWICHES[name]
    res = assert_converts(_sandwich(middle, inits, cin2), rtol=1e-4, atol=1e-4, max_transposes=0)
    assert res.io["inputs"][0]["perm"] == [0, 2, 3, 1]
    assert res.io["outputs"][0]["perm"] == [0, 2, 3, 1]


def test_unsqueeze_expand_reshape_upsampling_still_converts():
    middle, inits, cin2 = SANDWICHES["upsample_by_tile_and_reshape"]
    assert_converts(_sandwich(middle, inits, cin2), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pool", ["gap", "reducemean", "reducemean_axes_attr"])
@pytest.mark.parametrize("head", ["flatten_gemm", "reshape_matmul", "squeeze_matmul"])
def test_global_pool_then_flatten_has_no_transposes(pool, head):
    nodes = [h.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c1"], ["r"])]
    inits = [_w("W1", (C, 3, 3, 3)), _w("FC", (C, 10)), _w("FCt", (10, C)), _w("B", (10,))]
    if pool == "gap":
        nodes.append(h.make_node("GlobalAveragePool", ["r"], ["p"]))
    elif pool == "reducemean":
        nodes.append(h.make_node("ReduceMean", ["r", "ax"], ["p"], keepdims=1))
        inits.append(_i64("ax", [-2, -1]))
    else:
        nodes.append(h.make_node("ReduceMax", ["r"], ["p"], keepdims=1, axes=[2, 3]))
    if head == "flatten_gemm":
        nodes += [h.make_node("Flatten", ["p"], ["f"]), h.make_node("Gemm", ["f", "FCt", "B"], ["y"], transB=1)]
    elif head == "reshape_matmul":
        nodes += [h.make_node("Reshape", ["p", "s"], ["f"]), h.make_node("MatMul", ["f", "FC"], ["y"])]
        inits.append(_i64("s", [0, -1]))
    else:
        nodes += [h.make_node("Squeeze", ["p", "sq"], ["f"]), h.make_node("MatMul", ["f", "FC"], ["y"])]
        inits.append(_i64("sq", [2, 3]))
    opset = 13 if pool == "reducemean_axes_attr" else 18
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [2, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", opset)]), max_transposes=0)


def test_segmentation_head_argmax_over_channels_has_no_transposes():
    nodes = [h.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("ArgMax", ["c1"], ["y"], axis=1, keepdims=1)]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.INT64, None)], [_w("W1", (C, 3, 3, 3))])
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), max_transposes=0)


def test_slice_feeding_a_graph_output_and_a_conv():
    """A sliced tensor that is also a graph output keeps the public NCHW layout."""
    nodes = [h.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Slice", ["c1", "s", "e", "a"], ["mid"]),
             h.make_node("Conv", ["mid", "W2"], ["y"])]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None), h.make_tensor_value_info("mid", TP.FLOAT, None)],
                     [_w("W1", (C, 3, 3, 3)), _w("W2", (4, 4, 1, 1)), _i64("s", [1]), _i64("e", [5]), _i64("a", [1])])
    res = assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]))
    assert res.stats["transpose_count"] <= 1


def _before_conv(first, inits, cin=3, x_shape=(1, 3, 10, 10), opset=18):
    """``first`` (x -> p) -> Sub(mean) -> Conv: pre-processing that the pull phase moves behind the input."""
    nodes = first + [h.make_node("Sub", ["p", "mean"], ["q"]), h.make_node("Conv", ["q", "W"], ["y"])]
    inits = list(inits) + [_w("mean", (cin, 1, 1)), _w("W", (4, cin, 3, 3))]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, list(x_shape))],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


@pytest.mark.parametrize("first,inits", [
    ([h.make_node("Gather", ["x", "i"], ["p"], axis=1)], [_i64("i", [2, 1, 0])]),              # RGB -> BGR
    ([h.make_node("Slice", ["x", "s", "e", "a"], ["p"])], [_i64("s", [1, 1]), _i64("e", [9, 9]), _i64("a", [2, 3])]),
    ([h.make_node("Slice", ["x", "s", "e", "a", "st"], ["p"])],
     [_i64("s", [-1]), _i64("e", [-100]), _i64("a", [3]), _i64("st", [-1])]),                   # horizontal flip
    ([h.make_node("Pad", ["x", "pd"], ["p"], mode="edge")], [_i64("pd", [0, 0, 1, 1, 0, 0, 1, 1])]),
    ([h.make_node("Pad", ["x", "pd"], ["p"], mode="reflect")], [_i64("pd", [0, 0, 2, 1, 0, 0, 0, 1])]),
    ([h.make_node("Tile", ["x", "t"], ["p"])], [_i64("t", [1, 1, 2, 1])]),
], ids=["gather_bgr", "crop", "flip", "pad_edge", "pad_reflect", "tile"])
def test_preprocessing_data_movement_is_pulled_to_the_input(first, inits):
    res = assert_converts(_before_conv(first, inits), max_transposes=0)
    assert res.io["inputs"][0]["perm"] == [0, 2, 3, 1]


def test_gather_with_run_time_indices_between_convs():
    nodes = [h.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Gather", ["c1", "i"], ["m"], axis=1), h.make_node("Conv", ["m", "W2"], ["y"])]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8]),
                                  h.make_tensor_value_info("i", TP.INT64, [3])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None)], [_w("W1", (C, 3, 3, 3)), _w("W2", (4, 3, 1, 1))])
    feeds = {"x": RNG.standard_normal((1, 3, 8, 8)).astype(np.float32), "i": np.array([-1, 0, 5], np.int64)}
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), feeds, max_transposes=0)


def test_split_outputs_feeding_different_consumers():
    """Each SPLIT output gets its own transpose back; those cancel against the NHWC consumers."""
    nodes = [h.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1]),
             h.make_node("Split", ["c1", "sp"], ["a", "b"], axis=1),
             h.make_node("Conv", ["a", "W2"], ["y"]), h.make_node("MaxPool", ["b"], ["z"], kernel_shape=[2, 2])]
    g = h.make_graph(nodes, "t", [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", TP.FLOAT, None), h.make_tensor_value_info("z", TP.FLOAT, None)],
                     [_w("W1", (C, 3, 3, 3)), _w("W2", (4, 3, 1, 1)), _i64("sp", [3, 5])])
    assert_converts(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]), max_transposes=0)


@pytest.mark.parametrize("groups", [2, 4])
def test_channel_shuffle_becomes_a_gather_and_keeps_no_transposes(groups):
    """ShuffleNet: Reshape [N, g, C/g, H, W] -> Transpose(0, 2, 1, 3, 4) -> Reshape [N, C, H, W]."""
    middle = [h.make_node("Reshape", ["r", "s1"], ["a"]), h.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 1, 3, 4]),
              h.make_node("Reshape", ["t", "s2"], ["m"])]
    inits = [_i64("s1", [1, groups, C // groups, 8, 8]), _i64("s2", [1, C, 8, 8])]
    res = assert_converts(_sandwich(middle, inits, C), rtol=1e-4, atol=1e-4, max_transposes=0)
    assert res.stats["op_histogram"]["GATHER"] == 1


def test_reshape_transpose_reshape_moving_two_axes_stays_a_transpose():
    """[N, C, H, W] -> [N, C, H*W] -> swap -> back to [N, C, H, W] mixes C and H*W: no single-axis GATHER."""
    middle = [h.make_node("Reshape", ["r", "s1"], ["a"]), h.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 1]),
              h.make_node("Reshape", ["t", "s2"], ["m"])]
    inits = [_i64("s1", [1, C, 64]), _i64("s2", [1, C, 8, 8])]
    res = assert_converts(_sandwich(middle, inits, C), rtol=1e-4, atol=1e-4)
    assert "GATHER" not in res.stats["op_histogram"]
