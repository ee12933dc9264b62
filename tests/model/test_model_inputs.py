"""make_inputs: dtypes, index ranges for Gather-like consumers, determinism."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from edgepack.errors import DynamicShapeError
from edgepack.model import make_inputs
from tests.model.kit import F, model

I32, I64 = TensorProto.INT32, TensorProto.INT64


def _gather_model(index_type=I32, rows=257, axis=0, through_cast=False):
    """Magika-style: int bytes index a (rows x 8) embedding table."""
    table = np.zeros((rows, 8) if axis == 0 else (8, rows), np.float32)
    nodes = [helper.make_node("Cast", ["bytes"], ["idx"], to=I64)] if through_cast else []
    nodes.append(helper.make_node("Gather", ["table", "idx" if through_cast else "bytes"], ["y"], axis=axis))
    out_shape = [1, 2048, 8] if axis == 0 else [8, 1, 2048]
    return model(nodes, [("bytes", index_type, [1, 2048])], [("y", F, out_shape)], {"table": table})


def test_gather_indices_cover_table_rows():
    (feeds,) = make_inputs(_gather_model())
    b = feeds["bytes"]
    assert b.dtype == np.int32 and b.shape == (1, 2048)
    assert b.min() >= 0 and b.max() < 257 and b.max() > 200


@pytest.mark.parametrize("kw", [{"axis": 1}, {"through_cast": True}, {"index_type": I64}])
def test_gather_variants(kw):
    (feeds,) = make_inputs(_gather_model(**kw))
    assert 200 < feeds["bytes"].max() < 257


def test_gather_elements_axis():
    nodes = [helper.make_node("GatherElements", ["data", "i"], ["y"], axis=1)]
    m = model(nodes, [("i", I64, [3, 500])], [("y", F, [3, 500])], {"data": np.zeros((3, 40), np.float32)})
    i = make_inputs(m)[0]["i"]
    assert i.min() >= 0 and i.max() == 39


def test_plain_integers_in_0_10_and_float_bool_dtypes():
    nodes = [helper.make_node("Cast", ["n"], ["nf"], to=F), helper.make_node("Cast", ["b"], ["bf"], to=F),
             helper.make_node("Cast", ["h"], ["hf"], to=F), helper.make_node("Cast", ["d"], ["df"], to=F),
             helper.make_node("Sum", ["x", "nf", "bf", "hf", "df"], ["y"])]
    types = {"x": F, "n": TensorProto.UINT8, "b": TensorProto.BOOL, "h": TensorProto.FLOAT16,
             "d": TensorProto.DOUBLE}
    m = model(nodes, [(k, t, [4, 100]) for k, t in types.items()], [("y", F, [4, 100])])
    (feeds,) = make_inputs(m)
    assert [feeds[k].dtype for k in "xnbhd"] == [np.float32, np.uint8, np.bool_, np.float16, np.float64]
    assert feeds["n"].min() == 0 and feeds["n"].max() == 9
    assert 0.3 < feeds["b"].mean() < 0.7
    assert abs(feeds["x"].mean()) < 0.2 and 0.8 < feeds["x"].std() < 1.2


def test_deterministic_per_seed():
    m = _gather_model()
    first, again, other = make_inputs(m, 3, seed=5), make_inputs(m, 3, seed=5), make_inputs(m, 3, seed=6)
    assert len(first) == 3
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["bytes"], b["bytes"])
    assert not np.array_equal(first[0]["bytes"], first[1]["bytes"])
    assert not np.array_equal(first[0]["bytes"], other[0]["bytes"])


def test_dynamic_inputs_refused():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, ["N", 3])], [("y", F, ["N", 3])])
    with pytest.raises(DynamicShapeError) as info:
        make_inputs(m)
    assert info.value.dims == [("x", 0, "N")]


def test_initializer_inputs_skipped():
    m = model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", F, [2]), ("w", F, [2])], [("y", F, [2])],
              {"w": np.ones(2, np.float32)}, opset=9, ir_version=3)
    assert list(make_inputs(m)[0]) == ["x"]
