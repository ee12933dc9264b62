"""Shape, gather, reduction and misc ops against numpy."""
from __future__ import annotations

import numpy as np
import pytest

from tests.coreml_ref import mil_kit as k


def _mb():
    from coremltools.converters.mil import Builder as mb
    return mb


X = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) / 7.0 - 8.0
I = np.array([[2, 0, 1], [1, 1, 0]], np.int32)
# name -> (builder(x), numpy reference(x))
CASES = {
    "reshape": (lambda x: _mb().reshape(x=x, shape=[6, -1]), lambda x: x.reshape(6, -1)),
    "transpose": (lambda x: _mb().transpose(x=x, perm=[0, 2, 3, 1]), lambda x: x.transpose(0, 2, 3, 1)),
    "squeeze": (lambda x: _mb().squeeze(x=_mb().expand_dims(x=x, axes=[1]), axes=[1]), lambda x: x),
    "expand_dims": (lambda x: _mb().expand_dims(x=x, axes=[-2]), lambda x: x[..., None, :]),
    "concat": (lambda x: _mb().concat(values=(x, _mb().mul(x=x, y=2.0)), axis=-2),
               lambda x: np.concatenate([x, x * 2], -2)),
    "concat_interleave": (lambda x: _mb().concat(values=(x, _mb().mul(x=x, y=2.0)), axis=1, interleave=True),
                          lambda x: np.stack([x, x * 2], 2).reshape(2, 6, 4, 5)),
    "stack": (lambda x: _mb().stack(values=(x, _mb().add(x=x, y=1.0)), axis=2), lambda x: np.stack([x, x + 1], 2)),
    "split": (lambda x: _mb().split(x=x, split_sizes=[1, 3], axis=2), lambda x: tuple(np.split(x, [1], 2))),
    "split_num": (lambda x: _mb().split(x=x, num_splits=3, axis=1), lambda x: tuple(np.split(x, 3, 1))),
    "slice_by_index": (lambda x: _mb().slice_by_index(x=x, begin=[0, 1, 0, 4], end=[2, 3, 4, 0], stride=[1, 1, 2, -2],
                                                      end_mask=[False, False, False, True]),
                       lambda x: x[0:2, 1:3, 0:4:2, 4::-2]),
    "slice_by_index_squeeze": (lambda x: _mb().slice_by_index(x=x, begin=[1, 0, 0, 0], end=[2, 3, 4, 5],
                                                     squeeze_mask=[True, False, False, False]), lambda x: x[1]),
    "slice_by_size": (lambda x: _mb().slice_by_size(x=x, begin=[0, 1, 1, 0], size=[-1, 2, 2, -1]),
                      lambda x: x[:, 1:3, 1:3, :]),
    "pad_constant": (lambda x: _mb().pad(x=x, pad=[1, 2, 0, 3], mode="constant", constant_val=-1.0),
                     lambda x: np.pad(x, [(0, 0), (0, 0), (1, 2), (0, 3)], constant_values=-1)),
    "pad_reflect": (lambda x: _mb().pad(x=x, pad=[2, 1, 1, 2], mode="reflect"),
                    lambda x: np.pad(x, [(0, 0), (0, 0), (2, 1), (1, 2)], mode="reflect")),
    "pad_replicate": (lambda x: _mb().pad(x=x, pad=[2, 1, 1, 2], mode="replicate"),
                      lambda x: np.pad(x, [(0, 0), (0, 0), (2, 1), (1, 2)], mode="edge")),
    "tile": (lambda x: _mb().tile(x=x, reps=[1, 2, 1, 3]), lambda x: np.tile(x, [1, 2, 1, 3])),
    "gather": (lambda x: _mb().gather(x=x, indices=I, axis=2), lambda x: np.take(x, I, axis=2)),
    "gather_neg": (lambda x: _mb().gather(x=x, indices=np.array([-1, 0], np.int32), axis=-1),
                   lambda x: x[..., [4, 0]]),
    "gather_along_axis": (lambda x: _mb().gather_along_axis(x=x, indices=np.zeros((2, 3, 2, 5), np.int32) + 3,
                                                            axis=2),
                          lambda x: np.take_along_axis(x, np.zeros((2, 3, 2, 5), np.int64) + 3, axis=2)),
    "reduce_mean": (lambda x: _mb().reduce_mean(x=x, axes=[2, 3], keep_dims=True),
                    lambda x: x.mean((2, 3), keepdims=True)),
    "reduce_sum": (lambda x: _mb().reduce_sum(x=x, axes=[1]), lambda x: x.sum(1)),
    "reduce_max": (lambda x: _mb().reduce_max(x=x, axes=[-1]), lambda x: x.max(-1)),
    "reduce_min": (lambda x: _mb().reduce_min(x=x), lambda x: x.min()),
    "reduce_prod": (lambda x: _mb().reduce_prod(x=_mb().mul(x=x, y=0.1), axes=[0]), lambda x: (x * 0.1).prod(0)),
    "reduce_l2_norm": (lambda x: _mb().reduce_l2_norm(x=x, axes=[3]), lambda x: np.sqrt((x ** 2).sum(3))),
    "reduce_argmax": (lambda x: _mb().reduce_argmax(x=_mb().sin(x=x), axis=1), lambda x: np.sin(x).argmax(1)),
    "topk": (lambda x: _mb().topk(x=_mb().sin(x=x), k=2, axis=-1), lambda x: _topk(np.sin(x), 2)),
    "cumsum": (lambda x: _mb().cumsum(x=x, axis=3), lambda x: np.cumsum(x, 3)),
    "cumsum_excl_rev": (lambda x: _mb().cumsum(x=x, axis=1, exclusive=True, reverse=True),
                        lambda x: np.flip(np.cumsum(np.flip(x, 1), 1), 1) - x),
    "shape": (lambda x: _mb().shape(x=x), lambda x: np.array(x.shape)),
    "fill": (lambda x: _mb().add(x=x, y=_mb().fill(shape=_mb().shape(x=x), value=2.5)), lambda x: x + 2.5),
    "range_1d": (lambda x: _mb().add(x=x, y=_mb().cast(x=_mb().range_1d(start=0, end=_mb().reduce_max(
        x=_mb().cast(x=_mb().shape(x=x), dtype="int32")), step=1), dtype="fp32")), lambda x: x + np.arange(5)),
    "cast": (lambda x: _mb().cast(x=x, dtype="int32"), lambda x: x.astype(np.int32)),
    "identity": (lambda x: _mb().identity(x=x), lambda x: x),
    "depth_to_space": (lambda x: _mb().depth_to_space(x=_mb().reshape(x=x, shape=[2, 4, 3, 5]), block_size=2),
                       lambda x: _d2s(x.reshape(2, 4, 3, 5), 2)),
    "space_to_depth": (lambda x: _mb().space_to_depth(
        x=_mb().slice_by_size(x=x, begin=[0, 0, 0, 0], size=[-1, -1, 4, 4]), block_size=2),
                       lambda x: _s2d(x[:, :, :4, :4], 2)),
}


def _topk(x, n):
    idx = np.argsort(-x, axis=-1, kind="stable")[..., :n]
    return np.take_along_axis(x, idx, -1), idx


def _d2s(x, b):   # TensorFlow's depth_to_space on NCHW (DCR), written out loop-wise
    n, c, h, w = x.shape
    out = np.zeros((n, c // (b * b), h * b, w * b), x.dtype)
    for ci in range(c):
        blk, oc = divmod(ci, c // (b * b))
        by, bx = divmod(blk, b)
        out[:, oc, by::b, bx::b] = x[:, ci]
    return out


def _s2d(x, b):
    n, c, h, w = x.shape
    out = np.zeros((n, c * b * b, h // b, w // b), x.dtype)
    for by in range(b):
        for bx in range(b):
            out[:, (by * b + bx) * c:(by * b + bx + 1) * c] = x[:, :, by::b, bx::b]
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_shape_and_misc_ops(name, mil_tmp):
    builder, ref = CASES[name]
    # passes off: coremltools would fold shape/fill/range_1d of a static shape into constants
    prog = k.load(k.build(mil_tmp, lambda x: builder(x), {"x": list(X.shape)}, passes=False))
    assert any(name.startswith(op) for op in prog.op_counts), prog.op_counts   # the op under test is there
    got = list(prog.run({"x": X}).values())
    want = ref(X.astype(np.float64))
    want = list(want) if isinstance(want, tuple) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == np.shape(w), (g.shape, np.shape(w))
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_select_and_int_inputs(mil_tmp):
    mb = _mb()
    prog = k.load(k.build(mil_tmp, lambda x, i: mb.gather(x=x, indices=i, axis=0),
                          {"x": [4, 3], "i": ([2], np.int32)}))
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    (got,) = prog.run({"x": x, "i": np.array([3, 1], np.int32)}).values()
    np.testing.assert_array_equal(got, x[[3, 1]])
