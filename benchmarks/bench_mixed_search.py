"""The mixed-precision search, old against new, in one run: ``legacy`` (sensitivity order of the ranking's
head, then climb 1, 2, 3, 4, 6, 9... layers, then prune each) and ``isolate`` (group testing on a few samples,
additive noise powers, verified in full; ``edgepack/mixed_isolate.py``).

Per model, the cpu target's int8 is calibrated, measured and ranked once; both strategies then search from
the same start with the same trial (candidates with layers kept float, measured in LiteRT on the held-out
samples against onnxruntime fp32). Printed per strategy: full measurements (all held-out samples), cheap ones
(a few samples), wall time, layers kept float, final gate figures; then the ratio isolate / legacy.

    nice -n 10 python benchmarks/bench_mixed_search.py [--models basic_pitch,ppocr_rec,ppocr_det,minilm]
                                                      [--samples 48] [--method auto]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import qnn_models  # noqa: E402
from edgepack.mixed import Trial, search  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.model.ort import reference_outputs  # noqa: E402
from edgepack.targets.tflite.quant.measure import measure  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import debug, prepare  # noqa: E402
from edgepack.targets.tflite.quant.policy import policy_float_nodes  # noqa: E402
from edgepack_runtime.precisions import PRECISIONS  # noqa: E402

MODELS = {"basic_pitch": "audio_basic_pitch_nmp.onnx", "ppocr_cls": "ocr_ppocr_mobile_v2_cls.onnx",
          "oww_embedding": "audio_oww_embedding_model.onnx", "minilm": "minilm_l3_encoder.onnx",
          "ppocr_det": "ocr_ppocrv4_det.onnx", "magika": "bytes_magika_standard_v3_3.onnx",
          "ppocr_rec": "ocr_ppocrv4_rec.onnx"}
CALIB = 32
MAX_FRACTION = 0.25


def setup(name: str, samples: int, method: str):
    """(model, trial factory, start candidate, start figures, ranked rows) of one model's int8."""
    if name == "ocr_ppocrv4_rec.onnx":     # rendered text lines (benchmarks/families_data.py)
        from benchmarks import families_data
        c = families_data.case("ppocr_rec", samples)
    else:
        c = qnn_models.case(name, samples)
    model = load_model(c.path, input_shapes=c.input_shapes)
    calib, holdout = c.samples[:CALIB], c.samples[CALIB:]
    reference = reference_outputs(model, holdout)
    gate = PRECISIONS["int8"].gate
    policy = policy_float_nodes(model, "cpu")
    low, ranges, method = prepare(model, calib, method, float_origins=policy)

    def make(keep):
        return low.finish("int8", ranges=ranges, keep_float=keep, float_origins=policy)

    def evaluate(tm, n):
        return measure(tm.data, low.io, model, holdout[:n], reference[:n], gate)

    def new_trial():
        return Trial(make, evaluate, lambda tm: len(tm.data))
    start = make([])
    figures = evaluate(start, None)
    _, ranked = debug(low, start, holdout)
    return c, method, new_trial, start, figures, ranked, len(holdout)


def run(strategy: str, new_trial, start, figures, ranked) -> dict:
    trial = new_trial()
    t0 = time.perf_counter()
    keep, _, fig = search(trial, [], [], ranked, MAX_FRACTION, start, figures, strategy=strategy)
    return {"strategy": strategy, "full": len(trial.tried), "cheap": trial.cheap, "wall_s": time.perf_counter() - t0,
            "float_layers": len(keep), "passed": fig["passed"], "snr": fig["min_snr_db"],
            "mean_cos": fig["mean_cosine"], "rel": fig["max_rel_error"], "keep": keep}


def _row(model: str, r: dict) -> str:
    return (f"| {model} | {r['strategy']} | {r['full']} | {r['cheap']} | {r['wall_s']:.0f} | {r['float_layers']} | "
            f"{'pass' if r['passed'] else 'FAIL'} | {r['snr']:.1f} | {r['mean_cos']:.4f} | {r['rel']:.3f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="basic_pitch,ppocr_rec,ppocr_det,minilm")
    ap.add_argument("--samples", type=int, default=48, help="samples per model: 32 calibration, the rest held out")
    ap.add_argument("--method", default="auto")
    ap.add_argument("--strategies", default="legacy,isolate")
    args = ap.parse_args(argv)
    print("| model | strategy | full measurements | cheap (4 samples) | wall s | float layers | gate | "
          "min SNR dB | mean cosine | max rel. error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in args.models.split(","):
        name = MODELS.get(key, key)
        c, method, new_trial, start, figures, ranked, n = setup(name, args.samples, args.method)
        if figures["passed"]:
            print(f"| {key} | int8 passes without mixed precision ({method}, SNR {figures['min_snr_db']:.1f} dB) |")
            continue
        rows = {s: run(s, new_trial, start, figures, ranked) for s in args.strategies.split(",")}
        for r in rows.values():
            print(_row(key, r), flush=True)
        if {"legacy", "isolate"} <= set(rows):
            old, new = rows["legacy"], rows["isolate"]
            print(f"| {key} | isolate / legacy | {new['full'] / max(old['full'], 1):.2f}x | | "
                  f"{new['wall_s'] / old['wall_s']:.2f}x | {new['float_layers']} vs {old['float_layers']} | | "
                  f"{new['snr'] - old['snr']:+.1f} dB | | |  ({c.data}; {method}; {n} held-out; "
                  f"start SNR {figures['min_snr_db']:.1f} dB, {len(ranked)} ranked layers)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
