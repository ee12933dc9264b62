"""One op alone in LiteRT (XNNPACK, 1 thread), fp32 against int8, at the shapes of real depthwise-separable
models: where int8 kernels are faster than float on this CPU and where they are not.

Each case is a one-node ONNX model (a depthwise Conv, a 1x1 Conv, or a Mul of two activations) lowered once
and finished in fp32 and in int8 (minmax ranges on 4 random samples); the op is cut out of each file as a
one-op model (``bench_op_profile.one_op``: int8 in, int8 out, no QUANTIZE around it) and the two are timed in
alternating rounds. The ratio is int8 / fp32 time of the same op.

    python benchmarks/bench_int8_kernels.py [--cases dw5_cls_late,pw_cls] [--rounds 15]

This is the floor under a model's int8 / fp32 ratio: a model made of ops whose int8 kernel is not faster
than its float one cannot reach 0.5x by any graph rewrite (PP-OCR cls, ``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ai_edge_litert import schema_py_generated as fb  # noqa: E402

from benchmarks.bench_op_profile import OPCODES, fed, one_op  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.targets.tflite import passes  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import prepare  # noqa: E402

# name -> (kind, channels, height, width, kernel, stride, out channels); NCHW input [1, C, H, W]
CASES = {
    "dw3_mnv2_early": ("dw", 144, 56, 56, 3, 1, None),      # MobileNetV2-class expansion layer
    "dw3_mnv2_mid": ("dw", 192, 28, 28, 3, 1, None),
    "dw3_cls_early": ("dw", 32, 12, 96, 3, 1, None),         # PP-OCR cls (48x192 input)
    "dw5_cls_mid": ("dw", 88, 3, 96, 5, 1, None),
    "dw5_cls_late": ("dw", 200, 2, 96, 5, 1, None),
    "dw5_det": ("dw", 96, 20, 20, 5, 1, None),               # PP-OCRv4 det (320x320 input) class
    "pw_cls": ("pw", 32, 2, 96, 1, 1, 200),                  # PP-OCR cls 1x1 expansion
    "pw_mnv2": ("pw", 32, 28, 28, 1, 1, 192),
    "mul_cls": ("mul", 200, 2, 96, None, None, None),        # hard-swish's x * h, PP-OCR cls late stage
    "mul_mnv2": ("mul", 144, 56, 56, None, None, None),
}


def _model(kind, c, hgt, wid, k, s, cout) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    x = h.make_tensor_value_info("x", TP.FLOAT, [1, c, hgt, wid])
    if kind == "mul":
        nodes = [h.make_node("Sigmoid", ["x"], ["g"]), h.make_node("Mul", ["x", "g"], ["y"])]
        inits = []
    else:
        group = c if kind == "dw" else 1
        cout = c if kind == "dw" else cout
        nodes = [h.make_node("Conv", ["x", "w", "b"], ["y"], strides=[s, s], pads=[k // 2] * 4, group=group)]
        inits = [nh.from_array(rng.normal(0, 0.3, (cout, c // group, k, k)).astype(np.float32), "w"),
                 nh.from_array(rng.normal(0, 0.1, cout).astype(np.float32), "b")]
    g = h.make_graph(nodes, kind, [x], [h.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    path = Path(tempfile.mkdtemp()) / f"{kind}.onnx"
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m = onnx.shape_inference.infer_shapes(m)
    onnx.save(m, str(path))
    return load_model(path)


def _cut(data: bytes, opcode: str) -> bytes:
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    for i, op in enumerate(m.subgraphs[0].operators):
        oc = m.operatorCodes[op.opcodeIndex]
        if OPCODES[max(oc.builtinCode, oc.deprecatedBuiltinCode)] == opcode:
            return one_op(m, i)
    raise LookupError(f"no {opcode} in the model")


def measure(name: str, rounds: int, per_round: int = 20) -> dict:
    kind, c, hgt, wid, k, s, cout = CASES[name]
    model = _model(kind, c, hgt, wid, k, s, cout)
    rng = np.random.default_rng(1)
    samples = [{"x": rng.normal(0, 1, (1, c, hgt, wid)).astype(np.float32)} for _ in range(4)]
    rule = passes._block_size
    passes._block_size = lambda *a, **kw: None        # the op as the model has it, not blocked
    try:
        low, ranges, _ = prepare(model, samples, "minmax")
        opcode = {"dw": "DEPTHWISE_CONV_2D", "pw": "CONV_2D", "mul": "MUL"}[kind]
        fns = {"fp32": fed(_cut(low.finish("fp32").data, opcode)).invoke,
               "int8": fed(_cut(low.finish("int8", ranges=ranges).data, opcode)).invoke}
    finally:
        passes._block_size = rule
    times = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(per_round):
                fn()
            times[key].append((time.perf_counter() - t0) * 1e6 / per_round)
    us = {key: statistics.median(v) for key, v in times.items()}
    return {"case": name, "op": opcode, "shape": [1, c, hgt, wid], "fp32_us": us["fp32"], "int8_us": us["int8"],
            "ratio": us["int8"] / us["fp32"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    print("| case | op | input (NCHW) | fp32 us | int8 us | int8 / fp32 |")
    print("|---|---|---|---|---|---|")
    for name in args.cases.split(","):
        r = measure(name, args.rounds)
        print(f"| {name} | {r['op']} | {'x'.join(map(str, r['shape']))} | {r['fp32_us']:.1f} | {r['int8_us']:.1f} "
              f"| {r['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
