"""A YOLOv8n-style CNN with seeded random weights, for int8 speed measurements (``bench_int8_speed.py``).

The blocks that make YOLO-style detectors hard on int8 CPUs: SiLU (Sigmoid * x) after every convolution,
C2f blocks (a split, bottlenecks with residual adds, a concatenation of every branch), SPPF (three chained
5x5 max pools concatenated with their input), and a neck that upsamples (nearest) and concatenates with an
earlier stage. Not a trained detector: its outputs only serve to compare int8 with fp32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

SIDE = 224


class _B:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.k = [], [], 0

    def name(self, hint: str) -> str:
        self.k += 1
        return f"{hint}{self.k}"

    def conv(self, x: str, cin: int, cout: int, k: int = 1, s: int = 1, act: bool = True) -> str:
        w, b, y = self.name("w"), self.name("b"), self.name("conv")
        self.inits += [nh.from_array(self.rng.normal(0, np.sqrt(2 / (cin * k * k)), (cout, cin, k, k))
                                     .astype(np.float32), w),
                       nh.from_array(self.rng.normal(0, 0.05, cout).astype(np.float32), b)]
        self.nodes.append(h.make_node("Conv", [x, w, b], [y], kernel_shape=[k, k], strides=[s, s],
                                      pads=[k // 2] * 4, name=y))
        return self.silu(y) if act else y

    def silu(self, x: str) -> str:
        s, y = self.name("sig"), self.name("silu")
        self.nodes += [h.make_node("Sigmoid", [x], [s], name=s), h.make_node("Mul", [x, s], [y], name=y)]
        return y

    def op(self, op_type: str, inputs, **attrs) -> str:
        y = self.name(op_type.lower())
        self.nodes.append(h.make_node(op_type, list(inputs), [y], name=y, **attrs))
        return y

    def c2f(self, x: str, cin: int, cout: int, n: int) -> str:
        y = self.conv(x, cin, cout)
        a, b = self.name("half"), self.name("half")
        self.nodes.append(h.make_node("Split", [y, self.const(np.array([cout // 2] * 2, np.int64))], [a, b],
                                      axis=1, name=self.name("split")))
        branches, z = [a, b], b
        for _ in range(n):
            r = self.conv(self.conv(z, cout // 2, cout // 2, 3), cout // 2, cout // 2, 3)
            z = self.op("Add", [z, r])
            branches.append(z)
        return self.conv(self.op("Concat", branches, axis=1), (2 + n) * cout // 2, cout)

    def sppf(self, x: str, c: int) -> str:
        y = self.conv(x, c, c // 2)
        pools = [y]
        for _ in range(3):
            pools.append(self.op("MaxPool", [pools[-1]], kernel_shape=[5, 5], pads=[2, 2, 2, 2]))
        return self.conv(self.op("Concat", pools, axis=1), 2 * c, c)

    def const(self, value: np.ndarray) -> str:
        n = self.name("c")
        self.inits.append(nh.from_array(value, n))
        return n


def build(path: Path, seed: int = 0) -> Path:
    """Write the model to ``path`` (input ``images`` [1, 3, 224, 224], output ``out``)."""
    b = _B(seed)
    x = b.conv(b.conv("images", 3, 16, 3, 2), 16, 32, 3, 2)          # 56x56
    p3 = b.c2f(x, 32, 32, 1)
    x = b.conv(p3, 32, 64, 3, 2)                                      # 28x28
    x = b.sppf(b.c2f(x, 64, 64, 2), 64)
    up = b.op("Resize", [x, "", b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    y = b.c2f(b.op("Concat", [up, p3], axis=1), 96, 32, 1)
    out = b.conv(y, 32, 8, 1, act=False)
    b.nodes[-1].output[0] = "out"
    g = h.make_graph(b.nodes, "yolo_like", [h.make_tensor_value_info("images", TP.FLOAT, [1, 3, SIDE, SIDE])],
                     [h.make_tensor_value_info("out", TP.FLOAT, [1, 8, 56, 56])], b.inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path
