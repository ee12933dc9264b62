"""Silero VAD (silero-vad 6.2.3) on the cpu target: its LSTM unrolled into primitive ops (edgepack.model.rnn).

Builds ``edgepack build vad --target cpu --input-value sr=16000`` at fp32 and int8 (mixed precision off, then
on) from speech-like audio (benchmarks/qnn_data.speech_like with pauses), and judges every build on a
held-out stream against onnxruntime running the ORIGINAL model fed sr=16000:
- one step: each held-out chunk with the state the original model carried to it (speech probability over the
  chunks: cosine and max abs error; the new state: cosine and max abs error);
- streaming: LiteRT carries its own state through the whole held-out stream (errors may accumulate).
Then the per-layer table of int8 (edgepack debug-quant), sizes, and LiteRT latency (one thread) against
onnxruntime CPU (one thread) on the original model in alternating rounds.

    nice -n 10 python benchmarks/bench_vad_cpu.py [--calib 32] [--holdout 20] [--rounds 30]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import cosine, interpreter, invoke, paired_latency  # noqa: E402
from benchmarks.qnn_data import speech_like  # noqa: E402
from edgepack.build import build  # noqa: E402
from edgepack.targets.base import QuantOptions  # noqa: E402
from edgepack.testing.corpus import FROZEN, fetch  # noqa: E402
from edgepack_runtime import Runtime  # noqa: E402

NAME = "vad_silero_vad.onnx"
SHAPES, VALUES = FROZEN[NAME]
RATE, HOP, CONTEXT = 16000, 512, 64
# The STFT magnitude (Conv with a 1x256 kernel, squares, sum, sqrt): int8's worst layers, and a 1-D conv shape
# on which LiteRT's int8 XNNPACK kernel is ~15x slower than fp32 (4 output positions, 258 channels).
STFT = tuple(f"If_0_then_branch__Inline_0__/stft/{n}" for n in ("Conv", "Pow", "Pow_1", "Add", "Sqrt"))


def stream(n_chunks: int, seed: int) -> np.ndarray:
    """Speech-like syllables, a pause of faint noise, speech again: enough audio for ``n_chunks``."""
    rng = np.random.default_rng(seed)
    need = n_chunks * HOP + CONTEXT
    parts = []
    while sum(p.size for p in parts) < need:
        parts.append(speech_like(rng.uniform(0.4, 0.9), RATE, rng, rng.uniform(0.2, 0.6)))
        parts.append((0.003 * rng.standard_normal(int(rng.uniform(0.1, 0.4) * RATE))).astype(np.float32))
    return np.concatenate(parts)[:need]


def chunks(n: int, seed: int, sess: ort.InferenceSession) -> tuple[list[dict], list[list[np.ndarray]]]:
    """(inputs, the original model's outputs) of a stream, the state carried as silero-vad does."""
    audio, state = stream(n, seed), np.zeros((2, 1, 128), np.float32)
    samples, refs = [], []
    for k in range(n):
        feeds = {"input": audio[None, k * HOP:k * HOP + HOP + CONTEXT], "state": state}
        out = sess.run(None, {**feeds, "sr": np.array(RATE, np.int64)})
        samples.append(feeds)
        refs.append(out)
        state = out[1]
    return samples, refs


def tflite_of(result) -> bytes:
    entry = result.manifest["targets"][0]
    assert not any(io["perm"] for io in entry["io"]["inputs"] + entry["io"]["outputs"]), entry["io"]
    with Runtime.open(result.path) as rt:
        return rt.bundle.read(entry["file"])


def run(data: bytes, samples: list[dict], refs, *, carry: bool) -> list[list[np.ndarray]]:
    it = interpreter(data)
    names = [d["name"] for d in it.get_input_details()]
    outs, state = [], samples[0]["state"]
    for s in samples:
        feeds = {"input": s["input"], "state": state if carry else s["state"]}
        got = invoke(it, [feeds["input" if "input" in n else "state"] for n in names])
        by_shape = {g.shape: g for g in got}
        prob, new_state = by_shape[tuple(refs[0][0].shape)], by_shape[tuple(refs[0][1].shape)]
        outs.append([prob, new_state])
        state = new_state
    return outs


def figures(got, refs) -> dict:
    p, q = np.array([g[0].ravel()[0] for g in got]), np.array([r[0].ravel()[0] for r in refs])
    s, t = np.stack([g[1] for g in got]), np.stack([r[1] for r in refs])
    return {"prob_cos": cosine(p, q), "prob_max_abs": float(np.abs(p - q).max()),
            "prob_range": float(q.max() - q.min()),
            "state_cos_min": min(cosine(a, b) for a, b in zip(s, t)), "state_max_abs": float(np.abs(s - t).max()),
            "state_range": float(t.max() - t.min())}


def show(label: str, f: dict) -> None:
    print(f"  {label:<28} prob cos {f['prob_cos']:.6f}  max|err| {f['prob_max_abs']:.2e} "
          f"(range {f['prob_range']:.3f})  state cos(min) {f['state_cos_min']:.6f}  max|err| "
          f"{f['state_max_abs']:.2e} (range {f['state_range']:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calib", type=int, default=32)
    ap.add_argument("--holdout", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(fetch(NAME)), opts, providers=["CPUExecutionProvider"])
    cal, _ = chunks(args.calib, 1, sess)
    held, refs = chunks(args.holdout, 2, sess)
    probs = [r[0].ravel()[0] for r in refs]
    print(f"held-out stream: {len(held)} chunks, speech probability {min(probs):.3f}..{max(probs):.3f}")
    tmp = Path(tempfile.mkdtemp())
    np.savez(tmp / "cal.npz", input=np.stack([s["input"] for s in cal]),
             state=np.stack([s["state"] for s in cal]))
    builds = {}
    for label, precision, quant in (("fp32", "fp32", None),
                                    ("int8 (mixed off)", "int8", QuantOptions(mixed_precision=False)),
                                    ("int8 (mixed on)", "int8", None),
                                    ("int8 (stft float)", "int8", QuantOptions(mixed_precision=False,
                                                                               keep_float=STFT)),
                                    ("int16x8", "int16x8", QuantOptions(mixed_precision=False))):
        t0 = time.perf_counter()
        res = build(fetch(NAME), targets=["cpu"], precision=precision, quant=quant, input_shapes=SHAPES,
                    input_values=VALUES, calibration=tmp / "cal.npz", holdout=0.25, allow_mismatch=True,
                    out=tmp / f"{label.split()[0]}{len(builds)}.edgepack")
        entry = res.manifest["targets"][0]
        builds[label] = data = tflite_of(res)
        q, par = entry.get("quantization") or {}, entry["parity"]
        print(f"{label}: build {time.perf_counter() - t0:.1f} s, {len(data)} bytes, gate passed {par['passed']} "
              f"(build's own held-out: min cos {par['min_cosine']:.4f}, mean cos {par.get('mean_cosine', 0):.4f}, "
              f"min SNR {par.get('min_snr_db', 0):.1f} dB), layers kept float {len(q.get('float_layers', []))}, "
              f"raised to int16 {[x['origin'].split('/', 1)[-1] for x in q.get('int16_layers', [])]}")
        show("one step", figures(run(data, held, refs, carry=False), refs))
        show("streaming (own state)", figures(run(data, held, refs, carry=True), refs))
    print(f"sizes: original ONNX {fetch(NAME).stat().st_size} bytes; "
          + ", ".join(f"{k} {len(v)}" for k, v in builds.items()))
    debug_table(tmp / "cal.npz")
    latency(builds, held[0], sess, args.rounds)


def debug_table(cal: Path) -> None:
    from edgepack.debug import debug_quant
    rep = debug_quant(fetch(NAME), target="cpu", calibration=cal, input_shapes=SHAPES, input_values=VALUES)
    print("int8 per-layer table (debug-quant, worst first):")
    for row in rep.ranked[:8]:
        print("  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


def latency(builds: dict, sample: dict, sess, rounds: int, per_round: int = 50) -> None:
    """Paired rounds of ``per_round`` calls (~10 ms a round: longer than a scheduler slice on a shared host)."""
    feeds = {**sample, "sr": np.array(RATE, np.int64)}
    base = lambda: sess.run(None, feeds)                               # noqa: E731
    calls = {}
    for label, data in builds.items():
        it = interpreter(data)
        names = [d["name"] for d in it.get_input_details()]
        arrays = [sample["input" if "input" in n else "state"] for n in names]
        calls[label] = (lambda it=it, arrays=arrays: invoke(it, arrays))
        ours, ref = paired_latency(calls[label], base, rounds=rounds, per_round=per_round, budget_s=60)
        print(f"latency {label}: LiteRT {ours:.3f} ms vs onnxruntime (original) {ref:.3f} ms: {ours / ref:.2f}x")
    for label, call in calls.items():
        if label != "fp32":
            ours, ref = paired_latency(call, calls["fp32"], rounds=rounds, per_round=per_round, budget_s=60)
            print(f"latency {label} vs fp32 (LiteRT both): {ours:.3f} / {ref:.3f} ms = {ours / ref:.2f}x")


if __name__ == "__main__":
    main()
