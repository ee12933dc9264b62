"""A real QDQ model through the cpu target: edgepack's int8 TFLite (the model's own scales) and fp32 TFLite
(the dequantized twin) against onnxruntime running the QDQ model itself, which is the reference and the
baseline; sizes, and LiteRT latency of int8 against fp32 (one thread, alternating rounds).

    python benchmarks/qdq_in.py [N_INPUTS]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edgepack.model import load_model  # noqa: E402
from edgepack.model.qdq import dequantize  # noqa: E402
from edgepack.targets.tflite.convert import lower  # noqa: E402
from edgepack.targets.tflite.quant.policy import policy_float_nodes  # noqa: E402
from edgepack.targets.tflite.quant.qdq import model_quant  # noqa: E402
from edgepack.testing.corpus import INPUT_SHAPES, fetch  # noqa: E402

NAME = "audio_smart_turn_v3_2_cpu_qdq.onnx"


def _interp(data: bytes):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    return it


def _run(it, x):
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def _figures(got: np.ndarray, ref: np.ndarray) -> str:
    d = np.abs(got - ref)
    cos = float(got @ ref / (np.linalg.norm(got) * np.linalg.norm(ref)))
    return (f"max |err| {d.max():.4f}  mean |err| {d.mean():.4f}  max rel {d.max() / np.abs(ref).max():.2e}  "
            f"cosine over the inputs {cos:.6f}")


def main(n: int = 32) -> int:
    import onnxruntime as ort
    path = fetch(NAME)
    shape = INPUT_SHAPES[NAME]["input_features"]
    t0 = time.perf_counter()
    flt, info = dequantize(load_model(path, input_shapes=INPUT_SHAPES[NAME]))
    low = lower(flt, keep_weights=True)          # as the pipeline lowers a quantized model
    mq = model_quant(flt, info, low)
    int8 = low.finish("int8", ranges=mq.ranges, weight_scales=mq.weight_scales,
                      float_origins=policy_float_nodes(flt, "cpu"))
    fp32 = low.finish("fp32")
    print(f"{NAME}: converted in {time.perf_counter() - t0:.1f} s; model counts {mq.counts}")
    print(f"sizes: source QDQ {path.stat().st_size:,} B, int8 {len(int8.data):,} B, fp32 {len(fp32.data):,} B")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    xs = [(0.5 * rng.standard_normal(shape)).astype(np.float32) for _ in range(n)]
    ref = np.array([sess.run(None, {"input_features": x})[0].ravel()[0] for x in xs])
    i8, f32 = _interp(int8.data), _interp(fp32.data)
    got8 = np.array([_run(i8, x).ravel()[0] for x in xs])
    got32 = np.array([_run(f32, x).ravel()[0] for x in xs])
    print(f"reference: onnxruntime running the QDQ model, {n} inputs (0.5 * N(0,1) features), outputs "
          f"{ref.min():.3f}..{ref.max():.3f}")
    print(f"edgepack int8 : {_figures(got8, ref)}")
    print(f"edgepack fp32 : {_figures(got32, ref)}")
    times = {"int8": [], "fp32": [], "ort-qdq": []}
    for _ in range(5):                                   # alternating rounds, one thread each
        for key, fn in (("int8", lambda: _run(i8, xs[0])), ("fp32", lambda: _run(f32, xs[0])),
                        ("ort-qdq", lambda: sess.run(None, {"input_features": xs[0]}))):
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    print(f"latency (median of 5, ms): int8 {med['int8']:.1f}, fp32 {med['fp32']:.1f} (int8/fp32 "
          f"{med['int8'] / med['fp32']:.2f}x), onnxruntime QDQ {med['ort-qdq']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 32))
