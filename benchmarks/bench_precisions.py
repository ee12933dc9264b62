"""Each TFLite precision against fp32 on real models: size ratio, parity with onnxruntime (held-out synthetic
samples), LiteRT latency ratio (paired rounds, 1 thread).

    python benchmarks/bench_precisions.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import interpreter, invoke, paired_latency  # noqa: E402
from edgepack.model import load_model, make_inputs  # noqa: E402
from edgepack.targets.tflite import convert  # noqa: E402
from edgepack.testing.corpus import INPUT_SHAPES, fetch  # noqa: E402
from edgepack_runtime.compare import compare_output  # noqa: E402
from edgepack.model.ort import run_model  # noqa: E402
from tests.tflite.harness import run_tflite  # noqa: E402

MODELS = ["ocr_ppocr_mobile_v2_cls.onnx", "audio_oww_embedding_model.onnx", "bytes_magika_standard_v3_3.onnx",
          "audio_basic_pitch_nmp.onnx"]


def main() -> int:
    print(f"{'model':34} {'precision':13} {'bytes':>10} {'size ratio':>10} {'min cosine':>10} {'rel err':>9} "
          f"{'top1':>5} {'ms':>8} {'lat ratio':>9}")
    for name in MODELS:
        model = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
        feeds = make_inputs(model, 8, seed=123)
        out = model.graph.output[0].name
        ref = [run_model(model, f, [out])[0] for f in feeds]
        fp32 = convert(model)
        it32 = interpreter(fp32.data, threads=1)
        order = [i.name for i in model.graph.input]
        perm = {io["name"]: io["perm"] for io in fp32.io["inputs"]}
        args = [np.transpose(feeds[0][n], perm[n]) if perm[n] else feeds[0][n] for n in order]
        for precision in ("fp32", "fp16", "int8-dynamic"):
            res = fp32 if precision == "fp32" else convert(model, precision=precision)
            it = interpreter(res.data, threads=1)
            got = [run_tflite(res, f)[out] for f in feeds]
            fig = compare_output(got, ref)
            base_ms, ms = paired_latency(lambda: invoke(it32, args), lambda: invoke(it, args), rounds=30)
            top1 = fig.get("top1_agreement")
            print(f"{name:34} {precision:13} {len(res.data):10,} {len(res.data) / len(fp32.data):10.3f} "
                  f"{fig['cosine']:10.6f} {fig['rel_error']:9.2e} {('-' if top1 is None else f'{top1:.2f}'):>5} "
                  f"{ms:8.3f} {ms / base_ms:9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
