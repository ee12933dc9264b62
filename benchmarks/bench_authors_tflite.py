"""Our TFLite vs the model authors' own TFLite (openwakeword, basic-pitch): numerics, latency, size, TRANSPOSEs.

Both files run in the same LiteRT build, same thread count, same inputs, in one process. Latency is the
median over alternating rounds of bare ``invoke()`` calls (ours, theirs, ours, ...); our figure includes nothing the authors' does not (our I/O permutations
are identity on these models, checked below). Run from the repository root:

    python benchmarks/bench_authors_tflite.py [--threads 1] [--runs 50]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import cosine, interpreter, invoke, op_histogram, paired_latency  # noqa: E402
from edgepack.build import build  # noqa: E402
from edgepack.testing.corpus import INPUT_SHAPES, fetch  # noqa: E402
from edgepack_runtime.bundle import Bundle  # noqa: E402

PAIRS = [(f"{stem}.onnx", f"{stem}.tflite", INPUT_SHAPES.get(f"{stem}.onnx"))   # (onnx, authors' tflite, shapes)
         for stem in ("audio_oww_melspectrogram", "audio_oww_embedding_model", "audio_oww_alexa_v0.1",
                      "audio_basic_pitch_nmp")]


def _inputs(sess: ort.InferenceSession, shapes, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in sess.get_inputs():
        shape = (shapes or {}).get(i.name) or [d if isinstance(d, int) else 1 for d in i.shape]
        x = rng.standard_normal(shape).astype(np.float32)
        out[i.name] = x * 1000.0 if "melspectrogram" in str(sess._model_path) else x  # 16-bit-range audio
    return out


def measure(onnx_name: str, tfl_name: str, shapes, threads: int, runs: int) -> dict:
    onnx_path, theirs_path = fetch(onnx_name), fetch(tfl_name)
    with tempfile.TemporaryDirectory() as tmp:
        res = build(onnx_path, targets=["cpu"], input_shapes=shapes, out=Path(tmp) / "b.edgepack")
        b = Bundle.open(res.path)
        ours = b.read("models/cpu/model.tflite")
        io = b.target("cpu")["io"]
    assert all(x["perm"] is None for x in io["inputs"] + io["outputs"]), io
    theirs = theirs_path.read_bytes()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    sess._model_path = onnx_path
    feeds = [_inputs(sess, shapes, seed) for seed in range(3)]
    shapes_list = [list(f.shape) for f in feeds[0].values()]
    it_ours = interpreter(ours, shapes_list, threads)
    it_theirs = interpreter(theirs, shapes_list, threads)
    names = [o.name for o in sess.get_outputs()]
    theirs_names = [d["name"] for d in it_theirs.get_output_details()]
    order = [theirs_names.index(n) if n in theirs_names else i for i, n in enumerate(names)]
    cos_ours, cos_theirs, cos_pair, maxabs_ours = [], [], [], []
    for f in feeds:
        ref = sess.run(names, f)
        a = invoke(it_ours, list(f.values()))
        t = invoke(it_theirs, list(f.values()))
        t = [t[k] for k in order]
        for r, x, y in zip(ref, a, t):
            cos_ours.append(cosine(x, r))
            cos_theirs.append(cosine(y.reshape(r.shape), r))
            cos_pair.append(cosine(x, y.reshape(x.shape)))
            maxabs_ours.append(float(np.max(np.abs(x - r))))
    arrays = list(feeds[0].values())
    lat_ours, lat_theirs = paired_latency(lambda: invoke(it_ours, arrays), lambda: invoke(it_theirs, arrays),
                                          rounds=runs)
    h_ours, h_theirs = op_histogram(ours), op_histogram(theirs)
    return {"model": onnx_name, "cos_ours_vs_onnx": min(cos_ours), "cos_theirs_vs_onnx": min(cos_theirs),
            "cos_ours_vs_theirs": min(cos_pair), "maxabs_ours_vs_onnx": max(maxabs_ours),
            "lat_ours_ms": lat_ours, "lat_theirs_ms": lat_theirs, "latency_ratio": lat_ours / lat_theirs,
            "size_ours": len(ours), "size_theirs": len(theirs), "size_ratio": len(ours) / len(theirs),
            "ops_ours": sum(h_ours.values()), "ops_theirs": sum(h_theirs.values()),
            "transpose_ours": h_ours.get("TRANSPOSE", 0), "transpose_theirs": h_theirs.get("TRANSPOSE", 0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=40, help="alternating rounds of 5 calls each")
    args = ap.parse_args()
    print(f"threads={args.threads}; latency = median of {args.runs} alternating rounds of 5 invoke() calls; "
          "ratio = ours/theirs")
    hdr = (f"{'model':34} {'cos ours':>9} {'cos theirs':>10} {'ours~theirs':>11} {'ours ms':>8} {'theirs ms':>9}"
           f" {'lat ratio':>9} {'size ours':>10} {'size theirs':>11} {'ops o/t':>8} {'TRANSPOSE o/t':>13}")
    print(hdr)
    for onnx_name, tfl_name, shapes in PAIRS:
        r = measure(onnx_name, tfl_name, shapes, args.threads, args.runs)
        print(f"{r['model']:34} {r['cos_ours_vs_onnx']:9.6f} {r['cos_theirs_vs_onnx']:10.6f} "
              f"{r['cos_ours_vs_theirs']:11.6f} {r['lat_ours_ms']:8.3f} {r['lat_theirs_ms']:9.3f} "
              f"{r['latency_ratio']:9.3f} {r['size_ours']:10,} {r['size_theirs']:11,} "
              f"{r['ops_ours']:>3}/{r['ops_theirs']:<4} {r['transpose_ours']:>6}/{r['transpose_theirs']:<6}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
