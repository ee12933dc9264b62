"""Per-op cost of int8 against float in LiteRT (XNNPACK, one thread, alternating rounds): which int8 ops
XNNPACK takes, and what each op adds to a model's latency in int8 and in fp32.

Each case is the op (or the few ops of a pattern) between two 1x1 convolutions with a residual add, on a
[1, 32, 56, 56] activation (``x -> conv1 -> a -> OP -> b -> conv2 -> + a``); the base model has no op
(``b = a``). The op's cost is its model's time minus the base model's, measured in the same alternating
rounds for fp32 and int8 (edgepack's int8 build: minmax ranges on 8 random samples). Cases with a
``variant`` are built twice: with the speed passes (``quant/speed.py``) and without them.

    nice -n 10 python benchmarks/bench_int8_ops.py [--cases silu,concat] [--rounds 30]

The table ``MEASURED`` below records one run of this script; ``speed.py`` / ``clamps.py`` / ``rewrites.py``
cite it for the policy (which int8 ops to rewrite, which to keep).
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
from benchmarks.common import interpreter, invoke  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.targets.tflite.quant import partitions, speed  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import prepare  # noqa: E402
from edgepack.targets.tflite.quant.ranges import model_feeds  # noqa: E402

C, HW = 32, 56
# One run (2026-12-02, Xeon with AVX512-VNNI, ai-edge-litert 2.3.0, 40 rounds, machine load ~14 on 2 cores, so
# differences under ~0.5 ms are noise): case -> (int8 op delegated by XNNPACK without the rewrites,
# op us int8 without the rewrites, op us int8 with them, op us fp32). None: no rewrite applies.
MEASURED: dict[str, tuple[bool, float, float | None, float]] = {
    "relu": (False, 6650, 248, -173),                 # int8 RELU: TFLite's reference kernel -> requantize
    "maxpool_neg_pad": (False, 7140, 37, 1739),
    "hardswish": (False, 3449, -92, 675),             # int8 HARD_SWISH -> float island (DQ, f32 op, Q)
    "avgpool3": (False, 2807, 357, 1071),             # int8 AVERAGE_POOL_2D (SAME) -> float island
    "avgpool_valid": (False, 3091, 233, 1395),        # VALID -> int8 DEPTHWISE_CONV_2D
    "channel_shuffle": (False, 1229, 441, 1830),      # GATHER -> RESHAPE/TRANSPOSE/RESHAPE
    "max_of_scaled": (False, 124, 397, 579),          # MAXIMUM(x, a*x) -> LEAKY_RELU
    "hardsigmoid": (False, -152, -116, 231),          # RELU_0_TO_1 float island -> requantize
    "hardswish_decomposed": (True, -15, -27, 534),    # DIV by 6 -> MUL
    "scale_before_conv": (True, 339, -118, 596),      # scalar MUL folded into the conv's weights
    "concat": (True, 534, 447, 1188),                 # shared parameters: one requantization fewer
    "mul_const": (True, 179, -31, 362),
    "sigmoid": (True, 35, None, -14),                 # LOGISTIC int8: delegated, cheap
    "silu": (True, 75, None, 115),                    # LOGISTIC + MUL int8: delegated, cheap: kept in int8
    "leakyrelu": (True, 50, None, 13),
    "mean_broadcast": (True, 184, None, 1451),        # MEAN int8: delegated
    "mul_broadcast": (True, 736, None, 1113),
    "add_self": (True, -38, None, 899),
    "maxpool3": (True, 1372, None, 285),
}


def _c(name, value):
    return nh.from_array(np.asarray(value, np.float32), name)


def _shuffle(a):
    return ([h.make_node("Reshape", [a, "s1"], ["r1"]), h.make_node("Transpose", ["r1"], ["t1"], perm=[0, 2, 1, 3, 4]),
             h.make_node("Reshape", ["t1", "s2"], ["b"])],
            [nh.from_array(np.array([1, 2, C // 2, HW, HW], np.int64), "s1"),
             nh.from_array(np.array([1, C, HW, HW], np.int64), "s2")])


# name -> (nodes from "a" to "b", initializers)
CASES = {
    "relu": lambda: ([h.make_node("Relu", ["a"], ["b"])], []),
    "sigmoid": lambda: ([h.make_node("Sigmoid", ["a"], ["b"])], []),
    "silu": lambda: ([h.make_node("Sigmoid", ["a"], ["s"]), h.make_node("Mul", ["a", "s"], ["b"])], []),
    "hardsigmoid": lambda: ([h.make_node("HardSigmoid", ["a"], ["b"], alpha=0.2, beta=0.5)], []),
    "hardswish": lambda: ([h.make_node("HardSwish", ["a"], ["b"])], []),
    "hardswish_decomposed": lambda: ([h.make_node("Add", ["a", "three"], ["p"]),
                                      h.make_node("Clip", ["p", "zero", "six"], ["r"]),
                                      h.make_node("Mul", ["a", "r"], ["m"]),
                                      h.make_node("Div", ["m", "six"], ["b"])],
                                     [_c("three", 3.0), _c("zero", 0.0), _c("six", 6.0)]),
    "leakyrelu": lambda: ([h.make_node("LeakyRelu", ["a"], ["b"], alpha=0.1)], []),
    "max_of_scaled": lambda: ([h.make_node("Mul", ["a", "k"], ["m"]), h.make_node("Max", ["a", "m"], ["b"])],
                              [_c("k", 0.1)]),
    "mul_const": lambda: ([h.make_node("Mul", ["a", "k"], ["b"])], [_c("k", 0.5)]),
    "add_self": lambda: ([h.make_node("Add", ["a", "a"], ["b"])], []),
    "avgpool3": lambda: ([h.make_node("AveragePool", ["a"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], []),
    "maxpool3": lambda: ([h.make_node("MaxPool", ["a"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], []),
    "mean_broadcast": lambda: ([h.make_node("GlobalAveragePool", ["a"], ["g"]), h.make_node("Mul", ["a", "g"], ["b"])],
                               []),
    "mul_broadcast": lambda: ([h.make_node("Mul", ["a", "g"], ["b"])], [_c("g", np.full((1, C, 1, 1), 0.5))]),
    "concat": lambda: ([h.make_node("Mul", ["a", "k"], ["m"]), h.make_node("Concat", ["a", "m"], ["cat"], axis=1),
                        h.make_node("Conv", ["cat", "wc"], ["b"])],
                       [_c("k", 1.5), _c("wc", np.random.default_rng(3).normal(0, 0.2, (C, 2 * C, 1, 1)))]),
    "channel_shuffle": lambda: _shuffle("a"),
    "avgpool_valid": lambda: ([h.make_node("AveragePool", ["a"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                           count_include_pad=1)], []),
    "maxpool_neg_pad": lambda: ([h.make_node("Relu", ["a"], ["r"]),
                                 h.make_node("MaxPool", ["r"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], []),
    "scale_before_conv": lambda: ([h.make_node("Add", ["a", "a"], ["s"]), h.make_node("Div", ["s", "six"], ["b"])],
                                  [_c("six", 6.0)]),
}


def build(nodes, inits, path: Path) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    pre = [h.make_node("Conv", ["x", "w1", "b1"], ["a"])]
    post = [h.make_node("Conv", ["b", "w2", "b2"], ["c"]), h.make_node("Add", ["c", "a"], ["y"])]
    ws = [_c("w1", rng.normal(0, 0.25, (C, C, 1, 1))), _c("b1", rng.normal(0, 0.1, C)),
          _c("w2", rng.normal(0, 0.25, (C, C, 1, 1))), _c("b2", rng.normal(0, 0.1, C))]
    if not nodes:
        pre.append(h.make_node("Identity", ["a"], ["b"]))
    g = h.make_graph(pre + nodes + post, "op", [h.make_tensor_value_info("x", TP.FLOAT, [1, C, HW, HW])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [1, C, HW, HW])], ws + inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return load_model(path)


def variants(name: str, tmp: Path) -> dict[str, tuple[bytes, dict]]:
    """{label: (tflite bytes, io)}: fp32 and int8 of the case (and of the base model when name is None)."""
    nodes, inits = CASES[name]() if name else ([], [])
    model = build(nodes, inits, tmp / f"{name or 'base'}.onnx")
    rng = np.random.default_rng(1)
    samples = [{"x": rng.normal(0, 1, (1, C, HW, HW)).astype(np.float32)} for _ in range(8)]
    low, ranges, _ = prepare(model, samples, "minmax")
    out = {"fp32": low.finish("fp32").data, "int8": low.finish("int8", ranges=ranges).data}
    with speed.disabled():
        plain = low.finish("int8", ranges=ranges).data
    if plain != out["int8"]:
        out["int8 no-speed"] = plain
    return {k: (v, low.io) for k, v in out.items()}, samples[0]


def rounds(fns: dict, n: int, per: int = 5, budget_s: float = 40.0) -> dict[str, float]:
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    end = time.perf_counter() + budget_s
    while min(len(v) for v in times.values()) < n and time.perf_counter() < end:
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(per):
                fn()
            times[k].append((time.perf_counter() - t0) * 1e6 / per)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(name: str, base: dict, tmp: Path, n: int) -> list[str]:
    builds, sample = variants(name, tmp)
    fns, reps = {}, {}
    for label, (data, io) in list(builds.items()) + [(f"base {k}", v) for k, v in base.items()]:
        it = interpreter(data, threads=1)
        feed = model_feeds([sample], io)[0]
        fns[label] = lambda it=it, feed=feed: invoke(it, feed)
        reps[label] = partitions.report(data)
    us = rounds(fns, n)
    lines = []
    for label in builds:
        kind = "fp32" if label == "fp32" else "int8"
        r = reps[label]
        cost = us[label] - us[f"base {kind}"]
        lines.append(f"{name:22} {label:13} {us[label]:9.1f} {cost:9.1f} {r['partitions']:5d} "
                     f"{r['delegated']:>3}/{r['ops']:<3} {r['requantize']:7d} {r['dequantize']:3d}  "
                     f"{r['not_delegated'] or ''}")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base, _ = variants(None, tmp)
        base = {k: v for k, v in base.items() if k in ("fp32", "int8")}
        print(f"{'case':22} {'build':13} {'us':>9} {'op us':>9} {'parts':>5} {'deleg':>7} {'requant':>7} "
              f"{'dq':>3}  outside XNNPACK")
        for name in args.cases.split(","):
            for line in measure(name, base, tmp, args.rounds):
                print(line, flush=True)


if __name__ == "__main__":
    main()
