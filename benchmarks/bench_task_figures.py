"""Task-aware figures on real outputs: what cosine / relative error / SNR say against what the task sees.

Per model, the cpu target's plain int8 (no mixed precision; minmax calibration on 32 samples, the cpu op policy)
is run in LiteRT on the held-out samples and compared with onnxruntime fp32 (``compare_output``): the
generic figures, the output's kind and its task figures (``edgepack_runtime.kinds``), and a task outcome
measured directly: the PP-OCR detector's text boxes (connected regions of the map at DBNet's 0.3 threshold,
matched at box IoU >= 0.5), the recognizer's greedy CTC string, the classifier's label.

    nice -n 10 python benchmarks/bench_task_figures.py [--models ppocr_det,ppocr_cls,ppocr_rec] [--samples 40]
                                                      [--method minmax] [--keep-float-share 0.1]

``--keep-float-share``: also a build with that share of the worst-ranked layers kept float (a "better int8").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import qnn_models  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.model.ort import reference_outputs  # noqa: E402
from edgepack.targets.tflite.quant.measure import run_tflite  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import debug, prepare  # noqa: E402
from edgepack.targets.tflite.quant.policy import policy_float_nodes  # noqa: E402
from edgepack_runtime.compare import compare_output  # noqa: E402

MODELS = {"ppocr_det": "ocr_ppocrv4_det.onnx", "ppocr_cls": "ocr_ppocr_mobile_v2_cls.onnx",
          "ppocr_rec": "ocr_ppocrv4_rec.onnx", "basic_pitch": "audio_basic_pitch_nmp.onnx"}
CALIB = 32


def case(key: str, n: int):
    if key == "ppocr_rec":
        from benchmarks import families_data
        return families_data.case(key, n)
    return qnn_models.case(MODELS[key], n)


def boxes(prob: np.ndarray, t: float = 0.3) -> list[tuple]:
    """Bounding boxes (y0, x0, y1, x1) of the 4-connected regions of ``prob > t`` (DBNet's binarization)."""
    from scipy import ndimage
    labels, _ = ndimage.label(np.squeeze(prob) > t)
    return [(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in ndimage.find_objects(labels)
            if (s[0].stop - s[0].start) * (s[1].stop - s[1].start) >= 9]


def box_iou(a, b) -> float:
    h = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    w = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = h * w
    area = lambda x: (x[2] - x[0]) * (x[3] - x[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter) if inter else 0.0


def box_recall(got: np.ndarray, ref: np.ndarray) -> tuple[float, int, int]:
    """(share of reference boxes matched by a target box at IoU >= 0.5, boxes in ref, boxes in got)."""
    rb, gb = boxes(ref), boxes(got)
    hit = sum(any(box_iou(r, g) >= 0.5 for g in gb) for r in rb)
    return (hit / len(rb) if rb else 1.0), len(rb), len(gb)


def ctc(prob: np.ndarray) -> tuple:
    path = np.squeeze(prob).argmax(-1)
    return tuple(int(c) for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1]))


def outcome(key: str, got: list, ref: list, labels) -> str:
    if key == "ppocr_det":
        r = [box_recall(g, f) for g, f in zip(got, ref)]
        exact = np.mean([rec == 1.0 and nr == ng for rec, nr, ng in r])
        return f"box recall {np.mean([x[0] for x in r]):.3f} (worst {min(x[0] for x in r):.2f}), same box count {exact:.0%}"
    if key == "ppocr_rec":
        return f"same CTC string {np.mean([ctc(g) == ctc(f) for g, f in zip(got, ref)]):.0%}"
    if key == "ppocr_cls" and labels is not None:
        return (f"label accuracy {np.mean([np.argmax(g) == y for g, y in zip(got, labels)]):.3f} "
                f"(fp32 {np.mean([np.argmax(f) == y for f, y in zip(ref, labels)]):.3f})")
    return ""


FIELDS = ("cosine", "cosine_mean", "rel_error", "snr_db", "top1_agreement", "top5_agreement", "sequence_agreement",
          "region_recall", "region_precision",
          "max_prob_error", "iou_50", "iou_30")


def report(key, label, model, tm, holdout, ref, labels):
    names = [o.name for o in model.graph.output]
    got = run_tflite(tm.data, tm.io, holdout, names)
    for n in names:
        f = compare_output([g[n] for g in got], [r[n] for r in ref])
        cells = " | ".join(f"{f[k]:.4f}" if k in f else "–" for k in FIELDS)
        print(f"| {key} | {label} | {n[:24]} | {f.get('kind')} | {cells} | "
              f"{outcome(key, [g[n] for g in got], [r[n] for r in ref], labels)} |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="ppocr_det,ppocr_cls,ppocr_rec")
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--method", default="minmax")
    ap.add_argument("--keep-float-share", type=float, default=0.0)
    args = ap.parse_args(argv)
    print("| model | build | output | kind | " + " | ".join(FIELDS) + " | task outcome |")
    print("|---" * (len(FIELDS) + 5) + "|")
    for key in args.models.split(","):
        c = case(key, args.samples)
        model = load_model(c.path, input_shapes=c.input_shapes)
        calib, holdout = c.samples[:CALIB], c.samples[CALIB:]
        labels = c.labels[CALIB:] if c.labels else None
        ref = reference_outputs(model, holdout)
        policy = policy_float_nodes(model, "cpu")
        low, ranges, _ = prepare(model, calib, args.method, float_origins=policy)
        plain = low.finish("int8", ranges=ranges, float_origins=policy)
        report(key, "int8", model, plain, holdout, ref, labels)
        if args.keep_float_share:
            _, ranked = debug(low, plain, holdout)
            keep = [r["tensor"] for r in ranked[:max(1, int(args.keep_float_share * len(ranked)))]]
            better = low.finish("int8", ranges=ranges, float_origins=policy, keep_float=keep)
            report(key, f"int8, {len(keep)} worst layers float", model, better, holdout, ref, labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
