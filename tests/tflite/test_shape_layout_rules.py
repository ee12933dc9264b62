"""The layout pass' argument rewrites (``layout.ARG_REMAP``) on hand-built IR graphs, run in LiteRT before and
after the pass: pushing a TRANSPOSE below each data-movement op and pulling one above it keeps the values."""
import copy

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.interpreter import Interpreter

from edgepack.targets.tflite.ir import Graph
from edgepack.targets.tflite.layout import _Pass
from edgepack.targets.tflite.writer import serialize

RNG = np.random.default_rng(9)
SHAPE = (2, 3, 4, 5)
PERM = [0, 2, 3, 1]                     # the transposed tensor is (2, 4, 5, 3)


def _opts(cls, **fields):
    o = cls()
    for k, v in fields.items():
        setattr(o, k, v)
    return o


def _i32(g, v):
    return g.const(np.asarray(v, np.int32), "arg")


# name -> (opcode, build(g, data) -> (inputs, options), output shapes on the (2, 4, 5, 3) tensor, pushable)
CASES = {
    "strided_slice_masks": ("STRIDED_SLICE", lambda g, d: (
        [d, _i32(g, [0, 3, 1, 2]), _i32(g, [2, 0, 5, 0]), _i32(g, [1, -2, 2, -1])],
        _opts(fb.StridedSliceOptionsT, beginMask=0b0100, endMask=0b1000)), [(2, 2, 3, 3)], True),
    "slice": ("SLICE", lambda g, d: ([d, _i32(g, [0, 1, 2, 0]), _i32(g, [2, 2, 3, 2])], fb.SliceOptionsT()),
              [(2, 2, 3, 2)], True),
    "split": ("SPLIT", lambda g, d: ([_i32(g, 1), d], _opts(fb.SplitOptionsT, numSplits=2)),
              [(2, 2, 5, 3), (2, 2, 5, 3)], True),
    "split_v": ("SPLIT_V", lambda g, d: ([d, _i32(g, [1, 4]), _i32(g, -2)], _opts(fb.SplitVOptionsT, numSplits=2)),
                [(2, 4, 1, 3), (2, 4, 4, 3)], True),
    "tile": ("TILE", lambda g, d: ([d, _i32(g, [1, 2, 1, 3])], None), [(2, 8, 5, 9)], True),
    "mirror_pad_symmetric": ("MIRROR_PAD", lambda g, d: (
        [d, _i32(g, [[0, 0], [1, 2], [0, 3], [2, 0]])], _opts(fb.MirrorPadOptionsT, mode=fb.MirrorPadMode.SYMMETRIC)),
        [(2, 7, 8, 5)], True),
    "reverse": ("REVERSE_V2", lambda g, d: ([d, _i32(g, [2, 1])], fb.ReverseV2OptionsT()), [(2, 4, 5, 3)], True),
    "reverse_non_contiguous_after_remap": ("REVERSE_V2", lambda g, d: ([d, _i32(g, [2, 3])], fb.ReverseV2OptionsT()),
                                           [(2, 4, 5, 3)], False),
    "gather_1d": ("GATHER", lambda g, d: ([d, _i32(g, [4, 0, 4])], _opts(fb.GatherOptionsT, axis=2)),
                  [(2, 4, 3, 3)], True),
    "gather_2d_is_layout_breaking": ("GATHER", lambda g, d: (
        [d, _i32(g, [[1, 0], [2, 2]])], _opts(fb.GatherOptionsT, axis=1)), [(2, 2, 2, 5, 3)], False),
    "arg_max": ("ARG_MAX", lambda g, d: ([d, _i32(g, [3])], _opts(fb.ArgMaxOptionsT, outputType=fb.TensorType.INT64)),
                [(2, 4, 5)], True),
}


def _graph(name, pull: bool) -> Graph:
    """push: x -> TRANSPOSE -> op -> outputs.  pull: x' -> op -> TRANSPOSE(inverse) -> outputs."""
    code, build, out_shapes, _ = CASES[name]
    g = Graph()
    inv = [int(k) for k in np.argsort(PERM)]
    src_shape = tuple(SHAPE[p] for p in PERM) if pull else SHAPE
    g.inputs.append(g.add("x", src_shape, np.float32))
    data = "x"
    if not pull:
        data = g.add("xt", tuple(SHAPE[p] for p in PERM), np.float32)
        g.op("TRANSPOSE", ["x", _i32(g, PERM)], [data])
    inputs, options = build(g, data)
    dtype = np.int64 if code == "ARG_MAX" else np.float32
    outs = [g.add(f"o{i}", s, dtype) for i, s in enumerate(out_shapes)]
    g.op(code, inputs, outs, options)
    for o in outs:
        if pull:
            final = g.add(f"{o}_nchw", tuple(g.tensors[o].shape[k] for k in inv), dtype)
            g.op("TRANSPOSE", [o, _i32(g, inv)], [final])
            o = final
        g.outputs.append(o)
    return g


def _run(g: Graph, x: np.ndarray) -> list[np.ndarray]:
    it = Interpreter(model_content=serialize(g))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def _producer(g: Graph, name: str):
    return next((op for op in g.ops if name in op.outputs), None)


def _push(g: Graph) -> None:
    p = _Pass(g)
    p._sweep(p.try_push)


def _pull(g: Graph) -> None:
    p = _Pass(g)
    p._sweep(lambda op, prod: p.try_pull(op, prod, g.consumers()))


@pytest.mark.parametrize("name", list(CASES))
def test_push_transpose_below(name):
    g = _graph(name, pull=False)
    before = copy.deepcopy(g)
    _push(g)
    x = RNG.standard_normal(SHAPE).astype(np.float32)
    for want, got in zip(_run(before, x), _run(g, x)):
        np.testing.assert_array_equal(got, want)
    op = next(o for o in g.ops if o.opcode == CASES[name][0])
    data = op.inputs[1 if op.opcode == "SPLIT" else 0]
    assert (data == "x") == CASES[name][3]


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c[3] and len(c[2]) == 1 and c[0] != "ARG_MAX"])
def test_pull_transpose_above(name):
    g = _graph(name, pull=True)
    before = copy.deepcopy(g)
    _pull(g)
    x = RNG.standard_normal(tuple(SHAPE[p] for p in PERM)).astype(np.float32)
    np.testing.assert_array_equal(_run(g, x)[0], _run(before, x)[0])
    assert _producer(g, g.outputs[0]).opcode == CASES[name][0]   # the op now writes the output directly
