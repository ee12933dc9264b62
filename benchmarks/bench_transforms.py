"""Each graph transform's gain on real models: the cpu target's int8 (LiteRT) against fp32 onnxruntime on
held-out inputs, without any transform (the baseline, same run) and with one transform at a time, then
with ``auto`` (each kept only when the held-out figures improve); mixed precision off, then on.

    nice -n 10 python benchmarks/bench_transforms.py [MODEL ...] [--mixed] [--calib 32] [--holdout 8]

Models and realistic inputs come from ``benchmarks/qnn_models.py`` (PP-OCR det at 320x320). Figures: the
worst output's cosine and SNR, and the largest error as a share of the reference output's range.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import qnn_models as qm  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.model.ort import reference_outputs  # noqa: E402
from edgepack.targets.base import QuantOptions  # noqa: E402
from edgepack.targets.tflite.quant.measure import run_tflite  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import quantize  # noqa: E402
from edgepack_runtime.precisions import PRECISIONS  # noqa: E402

MODELS = ("ocr_ppocr_mobile_v2_cls.onnx", "ocr_ppocrv4_det.onnx", "audio_oww_embedding_model.onnx",
          "minilm_l3_encoder.onnx")
OFF = {"norms": "off", "cle": "off", "smooth": "off", "adaround": "off", "sum_round": "off", "bias_correction": "off"}
ROWS = {"none": OFF, "norms": {**OFF, "norms": "on"}, "cle": {**OFF, "cle": "on"}, "smooth": {**OFF, "smooth": "on"}, "adaround": {**OFF, "adaround": "on"}, "sum_round": {**OFF, "sum_round": "on"},
        "bias_correction": {**OFF, "bias_correction": "on"}, "auto": {}}


def err_of_range(got: list[dict], ref: list[dict]) -> float:
    """Largest |error| over samples as a share of the reference's range (max - min), worst output."""
    worst = 0.0
    for name in ref[0]:
        r = np.stack([x[name] for x in ref]).astype(np.float64)
        g = np.stack([x[name] for x in got]).astype(np.float64)
        worst = max(worst, float(np.abs(g - r).max() / max(r.max() - r.min(), 1e-12)))
    return worst


def row(model, calib, held, ref, settings, mixed: bool) -> dict:
    t0 = time.perf_counter()
    opts = QuantOptions(mixed_precision=mixed, transforms=settings)
    res = quantize(model, calib, held, ref, PRECISIONS["int8"].gate, opts)
    got = run_tflite(res.model.data, res.lowered.io, held, list(ref[0]))
    f = res.figures
    kept = (res.transforms or {}).get("kept", [])
    return {"cos": f["min_cosine"], "snr": f["min_snr_db"], "err": 100 * err_of_range(got, ref),
            "passed": f["passed"], "kept": kept, "float": len(res.float_layers),
            "int16": len(getattr(res, "int16_layers", [])),
            "s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=list(MODELS))
    ap.add_argument("--mixed", action="store_true", help="also mixed precision on (rows none and auto)")
    ap.add_argument("--mixed-only", action="store_true", help="only mixed precision on (rows none and auto)")
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--holdout", type=int, default=8)
    ap.add_argument("--rows", default=",".join(ROWS))
    args = ap.parse_args()
    print("| model | transform | mixed | kept | cosine | SNR dB | max err % range | float / int16 layers | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        case = qm.case(name, args.calib + args.holdout)
        model = load_model(case.path, input_shapes=case.input_shapes)
        calib, held = case.samples[:args.calib], case.samples[args.calib:]
        ref = reference_outputs(model, held)
        for mixed in ([True] if args.mixed_only else [False, True] if args.mixed else [False]):
            for label in args.rows.split(","):
                if mixed and label not in ("none", "auto"):
                    continue
                r = row(model, calib, held, ref, ROWS[label], mixed)
                print(f"| {name.replace('.onnx', '')} | {label} | {'on' if mixed else 'off'} | "
                      f"{','.join(r['kept']) or '-'} | {r['cos']:.5f} | {r['snr']:.2f} | {r['err']:.2f} | "
                      f"{r['float']} / {r['int16']} | {r['s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
