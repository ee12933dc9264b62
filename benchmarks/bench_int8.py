"""Every TFLite precision against fp32, and our full-integer int8 against onnxruntime's quantize_static
twice (run A: both at their defaults; run B: both with the same calibration method and the same nodes kept
in float; see ``bench_int8_ort.py``), on the same calibration and held-out data in one run.

Models: the fitted models from ``edgepack.testing.fitted`` (small CNN, small transformer encoder, the
outlier CNN; real labels, so accuracy is meaningful) and corpus models on synthetic inputs (agreement with
fp32 only). Per model and precision: size ratio to fp32, held-out min cosine / SNR / top-1 agreement with
fp32 (and accuracy for fitted models), LiteRT latency ratio to fp32 (1 thread, XNNPACK, paired rounds).
Then the onnxruntime table: figures from ``edgepack_runtime.compare.compare_output`` for both quantizers,
sizes within each file format (.tflite int8 / .tflite fp32, QDQ .onnx / fp32 .onnx), latency each in its
own runtime against its own fp32 file.

    python benchmarks/bench_int8.py [--corpus] [--method minmax|percentile|mse] [--ort-only]
                                    [--ort-library-defaults] [--with-consumers] [--no-ort]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import interpreter, invoke, paired_latency  # noqa: E402
from benchmarks import bench_int8_ort  # noqa: E402
from benchmarks.ort_qdq import agreement, run_ort  # noqa: E402
from edgepack.model import load_model, make_inputs  # noqa: E402
from edgepack.targets.base import QuantOptions  # noqa: E402
from edgepack.targets.tflite.quant.measure import run_tflite  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import quantize  # noqa: E402
from edgepack.targets.tflite.quant.ranges import model_feeds  # noqa: E402
from edgepack.targets.tflite.convert import lower  # noqa: E402
from edgepack.testing import fitted  # noqa: E402
from edgepack.testing.corpus import INPUT_SHAPES, fetch  # noqa: E402
from edgepack_runtime.precisions import PRECISIONS  # noqa: E402

CORPUS = ["ocr_ppocr_mobile_v2_cls.onnx", "audio_oww_embedding_model.onnx", "audio_oww_alexa_v0.1.onnx",
          "bytes_magika_standard_v3_3.onnx", "audio_basic_pitch_nmp.onnx"]
LEVELS = ("fp16", "int8-dynamic", "int8")   # besides fp32


def _args(tm, sample):
    return model_feeds([sample], tm.io)[0]


def rendered_text(n: int, seed: int) -> tuple[list[dict], np.ndarray]:
    """PP-OCR's direction classifier on real-looking input: random words rendered with Pillow's default
    font on 192x48, every other one rotated 180 degrees (label 1); preprocessing as PaddleOCR's
    ((x/255 - 0.5) / 0.5, NCHW). fp32 gets about 97% of the labels right."""
    import random
    import string
    from PIL import Image, ImageDraw, ImageFont
    rng = random.Random(seed)
    try:
        font = ImageFont.load_default(size=28)
    except TypeError:   # Pillow < 10.1: bitmap font only
        font = ImageFont.load_default()
    samples, labels = [], []
    for k in range(n):
        word = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(4, 9)))
        img = Image.new("RGB", (192, 48), (255, 255, 255))
        ImageDraw.Draw(img).text((rng.randint(2, 20), rng.randint(2, 10)), word, fill=(0, 0, 0), font=font)
        if k % 2:
            img = img.rotate(180)
        x = ((np.asarray(img, np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None]
        samples.append({"x": np.ascontiguousarray(x)})
        labels.append(k % 2)
    return samples, np.asarray(labels)


def evaluate(name, model, calib, holdout, labels=None, method="auto") -> tuple[list[dict], object]:
    """Rows of every TFLite precision, and the int8 ``Int8Result`` (run A of the onnxruntime comparison
    reuses it when ``method`` is auto)."""
    outs = [o.name for o in model.graph.output]
    ref = run_ort(model, holdout)
    low = lower(model)
    fp32 = low.finish("fp32")
    it32 = interpreter(fp32.data, threads=1)
    args32 = _args(fp32, holdout[0])
    rows = []

    def row(label, data_len, got, lat_ratio, extra=""):
        a = agreement([{o: g[o] for o in outs} for g in got], ref)
        acc = None
        if labels is not None:
            acc = float(np.mean([np.argmax(g[outs[0]]) == y for g, y in zip(got, labels)]))
        rows.append({"model": name, "precision": label, "size": data_len, "size_ratio": data_len / len(fp32.data),
                     "cosine": a["cosine_min"], "snr": a["snr_db"], "top1": a["top1"], "acc": acc,
                     "lat": lat_ratio, "extra": extra})

    row("fp32", len(fp32.data), run_tflite(fp32.data, fp32.io, holdout, outs), 1.0)
    res = None
    for precision in LEVELS:
        extra = ""
        if precision == "int8":
            res = quantize(model, calib, holdout, ref, PRECISIONS["int8"].gate, QuantOptions(method=method))
            tm = res.model
            kept = [f["origin"] or f["tensor"] for f in res.float_layers]
            extra = (f"{res.method}; float: {', '.join(kept) or 'none'}; float ops: "
                     f"{','.join(res.model.stats['quantization']['float_opcodes']) or '-'}")
        else:
            tm = low.finish(precision)
        it = interpreter(tm.data, threads=1)
        args = _args(tm, holdout[0])
        base_ms, ms = paired_latency(lambda: invoke(it32, args32), lambda: invoke(it, args), rounds=20)
        row(precision, len(tm.data), run_tflite(tm.data, tm.io, holdout, outs), ms / base_ms, extra)
    for r in rows:
        print("row:", end=" ")
        _print(r)
    return rows, res


def corpus_inputs():
    """(name, model, calibration, held-out, labels) of the corpus models: PP-OCR's classifier on rendered
    words (labels), then ``CORPUS`` on synthetic inputs (32 calibration, 8 held-out samples)."""
    name = "ocr_ppocr_mobile_v2_cls.onnx"
    model = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
    calib, _ = rendered_text(100, seed=1)
    holdout, labels = rendered_text(200, seed=2)
    yield "ppocr cls (rendered text)", model, calib, holdout, labels
    for name in CORPUS:
        model = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
        samples = make_inputs(model, 40, seed=7)
        yield name, model, samples[:32], samples[32:], None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", action="store_true", help="also run corpus models (synthetic inputs)")
    ap.add_argument("--corpus-only", action="store_true")
    ap.add_argument("--method", default="auto")
    ap.add_argument("--calib", type=int, default=200)
    ap.add_argument("--ort-only", action="store_true", help="only the onnxruntime comparison (runs A and B)")
    ap.add_argument("--no-ort", action="store_true", help="no onnxruntime comparison")
    ap.add_argument("--ort-library-defaults", action="store_true",
                    help="run A also with quantize_static's own defaults (per-tensor weights)")
    ap.add_argument("--models", default="small_cnn,small_transformer,outlier_cnn", help="fitted models")
    ap.add_argument("--with-consumers", action="store_true",
                    help="run B: one more onnxruntime row that also excludes the float nodes' consumers")
    args = ap.parse_args(argv)
    rows, ort_rows = [], []
    inputs = []
    if not args.corpus_only:
        inputs += [bench_int8_ort.fitted_inputs(getattr(fitted, m), args.calib)
                   for m in filter(None, args.models.split(","))]

    def everything():
        yield from inputs
        if args.corpus or args.corpus_only:
            yield from corpus_inputs()

    if not args.no_ort:
        print(bench_int8_ort.HEADER, flush=True)
    for name, model, calib, holdout, labels in everything():
        res = None
        if not args.ort_only:
            got, res = evaluate(name, model, calib, holdout, labels, args.method)
            rows += got
        if not args.no_ort:
            ort_rows += bench_int8_ort.compare(name, model, calib, holdout, labels,
                                               library_defaults=args.ort_library_defaults,
                                               with_consumers=args.with_consumers,
                                               a_result=res if args.method == "auto" else None)
        print(f"{name}: done", flush=True)
    if rows:
        print("\n| model | precision | size ratio | min cosine | SNR dB | top-1 agree | accuracy | latency ratio | notes |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            _print(r)
    if ort_rows:
        print("\n" + bench_int8_ort.HEADER)
        for r in ort_rows:
            print(bench_int8_ort.format_row(r))
    return 0


def _print(r):
    acc = "—" if r["acc"] is None else f"{r['acc']:.4f}"
    lat = "—" if r["lat"] != r["lat"] else f"{r['lat']:.2f}"
    print(f"| {r['model']} | {r['precision']} | {r['size_ratio']:.3f} | {r['cosine']:.5f} | {r['snr']:.1f} | "
          f"{r['top1']:.4f} | {acc} | {lat} | {r['extra']} |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
