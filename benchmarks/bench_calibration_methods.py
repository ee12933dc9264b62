"""The int8 activation-range methods side by side: for each model, int8 (no mixed precision) calibrated with
each method, compared with fp32 on the same held-out samples (mean / min cosine, SNR, top-1 agreement,
accuracy where labels exist).

    python benchmarks/bench_calibration_methods.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.bench_int8 import rendered_text  # noqa: E402
from benchmarks.ort_qdq import agreement, run_ort  # noqa: E402
from edgepack.model import load_model, make_inputs  # noqa: E402
from edgepack.targets.base import QuantOptions  # noqa: E402
from edgepack.targets.tflite.quant.measure import run_tflite  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import quantize  # noqa: E402
from edgepack.targets.tflite.quant.ranges import METHODS  # noqa: E402
from edgepack.testing import fitted  # noqa: E402
from edgepack.testing.corpus import INPUT_SHAPES, fetch  # noqa: E402
from edgepack_runtime.precisions import PRECISIONS  # noqa: E402


def datasets():
    for build in (fitted.small_cnn, fitted.small_transformer):
        f = build()
        yield f.name, f.model, f.calibration(200, split="train"), [{f.input_name: x} for x in f.x_test], f.y_test
    name = "ocr_ppocr_mobile_v2_cls.onnx"
    calib, _ = rendered_text(100, 1)
    holdout, labels = rendered_text(200, 2)
    yield "ppocr cls (rendered text)", load_model(fetch(name), input_shapes=INPUT_SHAPES[name]), calib, holdout, labels
    for name in ("audio_oww_embedding_model.onnx", "bytes_magika_standard_v3_3.onnx"):
        model = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
        samples = make_inputs(model, 60, seed=7)
        yield name + " (synthetic)", model, samples[:40], samples[40:], None


def main() -> int:
    print("| model | method | mean cosine | min cosine | SNR dB | top-1 agree | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for name, model, calib, holdout, labels in datasets():
        outs = [o.name for o in model.graph.output]
        ref = run_ort(model, holdout)
        for method in ("auto",) + METHODS:
            r = quantize(model, calib, holdout, ref, PRECISIONS["int8"].gate,
                             QuantOptions(method=method, mixed_precision=False))
            got = run_tflite(r.model.data, r.model.io, holdout, outs)
            a = agreement(got, ref)
            acc = "—" if labels is None else f"{np.mean([np.argmax(g[outs[0]]) == y for g, y in zip(got, labels)]):.4f}"
            label = f"auto → {r.method}" if method == "auto" else method
            print(f"| {name} | {label} | {a['cosine_mean']:.5f} | {a['cosine_min']:.4f} | {a['snr_db']:.2f} | "
                  f"{a['top1']:.4f} | {acc} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
