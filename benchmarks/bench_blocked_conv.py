"""One convolution, plain and on blocks of its width (``passes.block_thin_convs``), in LiteRT (XNNPACK, 1 thread):
the measurements behind the block-size rule in ``edgepack/targets/tflite/passes.py``.

A one-Conv ONNX model (plus a Relu) of the given shape is lowered once; each variant forces the block size P
(``plain``: not blocked) and is finished in fp32 and in int8 (minmax ranges on 4 random samples); all are timed
in the same alternating rounds. The rule's own choice is printed first.

    python benchmarks/bench_blocked_conv.py CIN,COUT,H,W,KH,KW,SH,SW [--blocks 1,2,4,8,16] [--rounds 10]

e.g. ``8,8,172,264,3,39,1,1`` (basic-pitch's harmonic convolution) or ``3,16,224,224,3,3,2,2`` (a first layer).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_int8_ops import rounds  # noqa: E402
from benchmarks.common import interpreter, invoke  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.targets.tflite import passes  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import prepare  # noqa: E402
from edgepack.targets.tflite.quant.ranges import model_feeds  # noqa: E402


def conv_model(path: Path, cin, cout, hgt, wid, kh, kw, sh, sw) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    g = h.make_graph([h.make_node("Conv", ["x", "w", "b"], ["y"], strides=[sh, sw], auto_pad="SAME_UPPER"),
                      h.make_node("Relu", ["y"], ["z"])], "conv",
                     [h.make_tensor_value_info("x", TP.FLOAT, [1, cin, hgt, wid])],
                     [h.make_tensor_value_info("z", TP.FLOAT, [1, cout, "h", "w"])],
                     [nh.from_array(rng.normal(0, 0.1, (cout, cin, kh, kw)).astype(np.float32), "w"),
                      nh.from_array(rng.normal(0, 0.1, cout).astype(np.float32), "b")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return load_model(path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shape", help="CIN,COUT,H,W,KH,KW,SH,SW")
    ap.add_argument("--blocks", default="1,2,3,4,8,16")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args(argv)
    cin, cout, hgt, wid, kh, kw, sh, sw = (int(v) for v in args.shape.split(","))
    rule = passes._block_size
    print(f"the rule picks: int8 P={rule(kw, sw, cin, cout, 'int8')}, float P={rule(kw, sw, cin, cout, 'float')}")
    model = conv_model(Path(tempfile.mkdtemp()) / "conv.onnx", cin, cout, hgt, wid, kh, kw, sh, sw)
    rng = np.random.default_rng(1)
    samples = [{"x": rng.normal(0, 1, (1, cin, hgt, wid)).astype(np.float32)} for _ in range(4)]
    low, ranges, _ = prepare(model, samples, "minmax")
    fns = {}
    try:
        for label in ["plain"] + [f"P={p}" for p in args.blocks.split(",")]:
            forced = None if label == "plain" else int(label[2:])
            passes._block_size = lambda *a, forced=forced, **k: forced
            for precision in ("fp32", "int8"):
                tm = low.finish(precision, ranges=ranges if precision == "int8" else None)
                it = interpreter(tm.data, threads=1)
                feed = model_feeds([samples[0]], low.io)[0]
                fns[f"{label} {precision}"] = lambda it=it, feed=feed: invoke(it, feed)
    finally:
        passes._block_size = rule
    us = rounds(fns, args.rounds, budget_s=60)
    for k, v in us.items():
        print(f"{k:14s} {v:10.1f} us")


if __name__ == "__main__":
    main()
