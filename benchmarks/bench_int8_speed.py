"""int8 against fp32 latency in LiteRT (XNNPACK, one thread, alternating rounds) on the corpus CNNs, with
what leaves the integer path (``quant/partitions.py``) and the held-out agreement with fp32.

Per model: the fp32 build, the int8 build as edgepack makes it (cpu policy, minmax ranges on 16 calibration
samples, no mixed precision) and, with ``--compare``, the same int8 build with the speed passes off
(``quant/speed.py``), all three timed in the same alternating rounds. Ratios are against the fp32 of the
same run, and ("x rw") against the fp32 build given the same exact float rewrites (``fp32+rw``: an fp32
that also loses its slow TRANSPOSE_CONV and GATHERs), so the int8 gain is not read off a handicapped fp32.

    nice -n 10 python benchmarks/bench_int8_speed.py [--models a.onnx,b.onnx] [--compare] [--rounds 20]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import qnn_data, qnn_models, yolo_like  # noqa: E402
from benchmarks.common import cosine, interpreter, invoke  # noqa: E402
from edgepack.model import load_model  # noqa: E402
from edgepack.targets.tflite.quant import partitions  # noqa: E402
from edgepack.targets.tflite.quant import rewrites, speed  # noqa: E402
from edgepack.targets.tflite.writer import serialize  # noqa: E402
from edgepack.targets.tflite.quant.pipeline import prepare  # noqa: E402
from edgepack.targets.tflite.quant.policy import policy_float_nodes  # noqa: E402
from edgepack.targets.tflite.quant.ranges import model_feeds  # noqa: E402

MODELS = ("ocr_ppocr_mobile_v2_cls.onnx", "ocr_ppocrv4_det.onnx", "audio_oww_embedding_model.onnx",
          "bytes_magika_standard_v3_3.onnx", "archonly_light_squeezenet.onnx", "archonly_light_shufflenet.onnx",
          "yolo_like")
YOLO = "yolo_like"       # benchmarks/yolo_like.py: a YOLOv8n-style CNN with random weights
CALIB, HOLDOUT = 16, 4


def builds(name: str, compare: bool):
    """(io, {label: tflite bytes}, held-out samples) of one model."""
    if name == YOLO:
        path = yolo_like.build(Path(tempfile.mkdtemp()) / "yolo_like.onnx")
        model, samples = load_model(path), qnn_data.natural_images(CALIB + HOLDOUT, 0, "images")
    else:
        case = qnn_models.case(name, CALIB + HOLDOUT)
        model, samples = load_model(case.path, input_shapes=case.input_shapes), case.samples
    calib, hold = samples[:CALIB], samples[CALIB:]
    low, ranges, _ = prepare(model, calib, "minmax")
    policy = policy_float_nodes(model, "cpu")
    out = {"fp32": low.finish("fp32").data, "fp32+rw": fp32_rewritten(low)}
    if compare:
        with speed.disabled():
            out["int8 before"] = low.finish("int8", ranges=ranges, float_origins=policy).data
    out["int8"] = low.finish("int8", ranges=ranges, float_origins=policy).data
    return low.io, out, hold


def fp32_rewritten(low) -> bytes:
    """The fp32 build with the exact float rewrites the int8 build gets (``quant/rewrites.py``), so the
    int8 ratio can also be read against an fp32 that has them."""
    g = copy.deepcopy(low.graph)
    for rewrite in (rewrites.div_as_mul, rewrites.scalar_muls, rewrites.even_splits, rewrites.leaky_max,
                    rewrites.gathers_as_transposes,
                    rewrites.deconv_as_depth_to_space, rewrites.avg_pool_as_depthwise):
        rewrite(g)
    g.toposort()
    return serialize(g, description=low.description)


def timed_rounds(fns: dict, rounds: int, per_round: int = 3, budget_s: float = 60.0) -> dict[str, float]:
    """Median ms per call of each callable, measured in alternating rounds."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    end = time.perf_counter() + budget_s
    while len(times["fp32"]) < rounds and time.perf_counter() < end:
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(per_round):
                fn()
            times[k].append((time.perf_counter() - t0) * 1e3 / per_round)
    return {k: statistics.median(v) for k, v in times.items()}


def run(name: str, compare: bool, rounds: int) -> list[dict]:
    io, data, hold = builds(name, compare)
    feeds = model_feeds(hold, io)
    its = {k: interpreter(v, threads=1) for k, v in data.items()}
    ref = [invoke(its["fp32"], f) for f in feeds]
    rows = []
    ms = timed_rounds({k: (lambda it=it: invoke(it, feeds[0])) for k, it in its.items()}, rounds)
    for k, it in its.items():
        cos = min(cosine(a, b) for f, r in zip(feeds, ref) for a, b in zip(invoke(it, f), r))
        rep = partitions.report(data[k])
        rows.append({"model": name, "build": k, "ms": ms[k], "ratio": ms[k] / ms["fp32"], "cosine": cos,
                     "ratio_rw": ms[k] / ms["fp32+rw"],
                     "size": len(data[k]), **{f: rep[f] for f in ("partitions", "requantize", "quantize",
                                                                   "dequantize", "delegated", "ops")},
                     "float_ops": sum(rep["float_ops"].values()) if not k.startswith("fp32") else 0,
                     "outside": rep["not_delegated"]})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--compare", action="store_true", help="also time the int8 build without the speed passes")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args(argv)
    print(f"{'model':34} {'build':12} {'ms':>8} {'x fp32':>7} {'x rw':>6} {'cos':>7} {'parts':>5} {'deleg':>8} "
          f"{'requant':>7} {'q':>3} {'dq':>3} {'float':>5}  outside XNNPACK")
    for name in args.models.split(","):
        for r in run(name, args.compare, args.rounds):
            print(f"{r['model'][:34]:34} {r['build']:12} {r['ms']:8.2f} {r['ratio']:7.2f} {r['ratio_rw']:6.2f} {r['cosine']:7.4f} "
                  f"{r['partitions']:5d} {r['delegated']:>3}/{r['ops']:<4} {r['requantize']:7d} {r['quantize']:3d} "
                  f"{r['dequantize']:3d} {r['float_ops']:5d}  {r['outside'] or ''}", flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
