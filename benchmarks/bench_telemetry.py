"""Runtime overhead of telemetry + drift: `Agent.run` (latency histogram, error counters, streaming drift
histograms) against the bare `Runtime.run`, same process, alternating rounds.

    python benchmarks/bench_telemetry.py [--rounds 40]
"""
from __future__ import annotations

import argparse
import sys
import time
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import paired_latency  # noqa: E402
from edgepack.build import build  # noqa: E402
from edgepack.model import make_inputs  # noqa: E402
from edgepack.testing.corpus import fetch  # noqa: E402
from edgepack_runtime import Runtime  # noqa: E402
from edgepack_runtime.agent import Agent  # noqa: E402


def small_model(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    w = nh.from_array(rng.standard_normal((10, 64)).astype(np.float32), "W")
    g = h.make_graph([h.make_node("Gemm", ["x", "W"], ["l"], transB=1), h.make_node("Softmax", ["l"], ["p"])],
                     "small", [h.make_tensor_value_info("x", TP.FLOAT, [1, 64])],
                     [h.make_tensor_value_info("p", TP.FLOAT, [1, 10])], [w])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), folder / "small.onnx")
    return folder / "small.onnx"


def measure(name: str, model: Path, shapes, rounds: int, folder: Path) -> None:
    bundle = build(model, targets=["cpu"], input_shapes=shapes, out=folder / f"{name}.edgepack").path
    rt = Runtime.open(bundle, num_threads=1)
    agent = Agent(rt, drift_window=10 ** 9)          # instrumented path, no threads started
    from edgepack.model import load_model
    feeds = make_inputs(load_model(model, input_shapes=shapes), 1, seed=1)[0]
    bare, inst = paired_latency(lambda: rt.run(feeds), lambda: agent.run(feeds), rounds=rounds, per_round=20)
    # the instrumentation alone, on the same inputs/outputs: precise where end-to-end noise is larger
    out = rt.run(feeds)
    for _ in range(200):
        agent.account(feeds, out, bare / 1e3)
    n = 5000
    t0 = time.perf_counter()
    for _ in range(n):
        agent.account(feeds, out, bare / 1e3)
    cost_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        agent.telemetry.record(bare / 1e3)
    counters_us = (time.perf_counter() - t0) / n * 1e6
    m = 500
    t0 = time.perf_counter()
    for _ in range(m):
        agent.drift.observe(feeds, out)
    observe_us = (time.perf_counter() - t0) / m * 1e6
    print(f"{name:30} bare {bare * 1e3:8.1f} us | with telemetry+drift {inst * 1e3:8.1f} us (ratio {inst / bare:5.3f})"
          f" | instrumentation {cost_us:5.2f} us/call = {cost_us / (bare * 1e3) * 100:5.2f}% "
          f"[histogram+counters {counters_us:4.2f} us, one drift observation {observe_us:5.1f} us, "
          f"observed every {agent._observe_every} calls]")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        measure("small (Gemm 64->10)", small_model(folder), None, args.rounds, folder)
        measure("mid (PP-OCR cls 1x3x48x192)", fetch("ocr_ppocr_mobile_v2_cls.onnx"), {"x": [1, 3, 48, 192]},
                args.rounds, folder)
        measure("mid (oww embedding)", fetch("audio_oww_embedding_model.onnx"), {"input_1": [1, 76, 32, 1]},
                args.rounds, folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
