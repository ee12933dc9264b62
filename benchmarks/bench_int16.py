"""TFLite 16x8 against int8 and the mixed ladder (int8 -> 16x8 -> float) on corpus models, against fp32.

    python benchmarks/bench_int16.py [--models cls,oww_emb,minilm,det] [--samples 48] [--holdout 16]

Per model (``qnn_models.case``: realistic inputs, calibration first, held-out last): ``int8`` and
``int16x8`` all-quantized (cpu policy, minmax ranges, no transforms), ``mixed``: int8 with the ladder
(``quant/ladder.py``) against the int8 gate, ``mixed16``: int16x8 with float layers against the 16x8 gate.
Figures on the held-out samples, worst output: mean and min cosine, SNR over all samples, max |error| as a
share of the fp32 output's range; size against fp32; LiteRT latency (1 thread, default delegates: XNNPACK)
against fp32 in alternating rounds (``common.paired_latency``), fp32 measured in the same run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import qnn_models  # noqa: E402
from benchmarks.common import interpreter, invoke, paired_latency  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.model.ort import reference_outputs  # noqa: E402
from edgepack.targets.tflite.quant.ladder import climb  # noqa: E402
from edgepack.targets.tflite.quant.measure import measure, run_tflite  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import debug, prepare  # noqa: E402
from edgepack.targets.tflite.quant.policy import policy_float_nodes  # noqa: E402
from edgepack.targets.tflite.quant.ranges import model_feeds  # noqa: E402
from edgepack_runtime.precisions import PRECISIONS  # noqa: E402

MODELS = {"cls": "ocr_ppocr_mobile_v2_cls.onnx", "oww_emb": "audio_oww_embedding_model.onnx",
          "minilm": "minilm_l3_encoder.onnx", "det": "ocr_ppocrv4_det.onnx"}


def figures(model, tm, hold, ref) -> dict:
    names = [o.name for o in model.graph.output]
    got = run_tflite(tm.data, tm.io, hold, names)
    worst = {"cos_mean": 1.0, "cos_min": 1.0, "snr": 200.0, "err_pct": 0.0}
    for n in names:
        g = np.stack([x[n] for x in got]).astype(np.float64)
        r = np.stack([x[n] for x in ref]).astype(np.float64)
        cos = [float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b) or 1)) for a, b in zip(g, r)]
        snr = 10 * np.log10(np.sum(r ** 2) / max(np.sum((g - r) ** 2), 1e-30))
        span = float(r.max() - r.min()) or 1.0
        worst = {"cos_mean": min(worst["cos_mean"], float(np.mean(cos))), "cos_min": min(worst["cos_min"], min(cos)),
                 "snr": min(worst["snr"], float(snr)),
                 "err_pct": max(worst["err_pct"], 100 * float(np.abs(g - r).max()) / span)}
    return worst


def latency(fp32, tm, sample) -> tuple[float, float]:
    (arrays,) = model_feeds([sample], tm.io)
    a, b = interpreter(fp32.data), interpreter(tm.data)
    return paired_latency(lambda: invoke(a, arrays), lambda: invoke(b, arrays), warmup=2, rounds=8, per_round=2,
                          budget_s=25.0)


def ladder(low, ranges, model, policy, hold, ref, precision):
    gate = PRECISIONS[precision].gate

    def make(keep, wide=()):
        return low.finish(precision, ranges=ranges, keep_float=keep, wide=wide, float_origins=policy)

    def evaluate(tm, n):
        return measure(tm.data, low.io, model, hold[:n], ref[:n], gate)

    base = make([])
    fig = evaluate(base, None)
    if fig["passed"]:
        return base, [], [], 1, True
    _, ranked = debug(low, base, hold)
    up = climb(make, evaluate, [], ranked, 0.25, base, fig, precision=precision)
    return up.model, up.wide, up.keep, 1 + len(up.tried), up.figures["passed"]


def run(key: str, n: int, n_hold: int, which=("int8", "int16x8", "mixed", "mixed16")) -> None:
    t0 = time.perf_counter()
    case = qnn_models.case(MODELS[key], n)
    model = load_model(case.path, input_shapes=case.input_shapes)
    calib, hold = case.samples[:n - n_hold], case.samples[n - n_hold:]
    ref = reference_outputs(model, hold)
    policy = policy_float_nodes(model, "cpu")
    low, ranges, _ = prepare(model, calib, "minmax", float_origins=policy)
    fp32 = low.finish("fp32")
    print(f"\n{key} ({case.name}, {case.data}; {len(calib)} calib / {len(hold)} held-out)")
    print(f"{'precision':9s} {'cos mean':>9s} {'cos min':>8s} {'SNR dB':>7s} {'err %rng':>8s} {'size':>6s} "
          f"{'fp32 ms':>8s} {'ms':>8s} {'ratio':>6s} int16 ops / float ops  note", flush=True)
    for name in which:
        if name in ("int8", "int16x8"):
            tm, note = low.finish(name, ranges=ranges, float_origins=policy), ""
        else:
            prec = "int8" if name == "mixed" else "int16x8"
            tm, wide, keep, tried, passed = ladder(low, ranges, model, policy, hold, ref, prec)
            note = (f"{len(wide)} int16 + {len(keep)} float layers, {tried} builds" + ("" if passed else
                    ", gate not met")) if (wide or keep) else "all-quantized passes the gate"
        f = figures(model, tm, hold, ref)
        l32, lq = latency(fp32, tm, hold[0])
        q = tm.stats["quantization"]
        print(f"{name:9s} {f['cos_mean']:9.5f} {f['cos_min']:8.5f} {f['snr']:7.2f} {f['err_pct']:8.2f} "
              f"{len(tm.data) / len(fp32.data):6.3f} {l32:8.2f} {lq:8.2f} {lq / l32:6.2f} "
              f"{q['int16_ops']:4d} / {len(q['float_ops']):3d}  {note}", flush=True)
    print(f"({time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--samples", type=int, default=48)
    ap.add_argument("--holdout", type=int, default=16)
    ap.add_argument("--rows", default="int8,int16x8,mixed,mixed16", help="which of the four rows to build")
    args = ap.parse_args()
    for key in args.models.split(","):
        run(key, args.samples, args.holdout, args.rows.split(","))


if __name__ == "__main__":
    main()
