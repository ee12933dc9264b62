"""A quantized (QDQ) model into every target (issue #14 item 1, "for every target").

The corpus QDQ model (Smart Turn v3.2, 194 DequantizeLinear nodes, per-channel int8 weights, uint8
activations) with realistic inputs (``families_data.turn_features``: Whisper log-mel of speech-like audio),
16 calibration samples and 8 held-out ones, built per target and precision through ``edgepack.build``. The
reference is onnxruntime running the QDQ model itself (as the build judges it). Per row: the build's own
verdict and figures on the hold-out (cpu: LiteRT; coreml: the MIL reference executor, as macOS is not here;
qualcomm: the HTP simulator), what the model's own quantization became (weights whose integer grid was
kept, activation ranges used), size and build time.

    python benchmarks/bench_quantized_in.py [--rows cpu:int8,coreml:w8,...] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
warnings.simplefilter("ignore")
from benchmarks import families_data  # noqa: E402

ROWS = ("cpu:fp32", "cpu:int8", "coreml:fp16", "coreml:w8", "qualcomm:w8a8", "qualcomm:w8a16")


def kept(target: dict) -> str:
    if target["name"] == "cpu":
        q = target.get("quantization") or {}
        if not q:
            return "float twin (fp32)"
        m = q.get("model") or {}
        return (f"scales from the {q.get('source')}; model weight scales used {m.get('weight_scales_used')}; "
                f"{json.dumps({k: v for k, v in m.items() if k != 'weight_scales_used' and not isinstance(v, list)})[:120]}")
    if target["name"] == "coreml":
        q = (target.get("compression") or {}).get("quantized_in")
        return (f"weight grids kept {q['model_grid_kept']} of {q['int8_weights_in_model']} "
                f"({q['small_left_fp16']} under 2,048 values stay fp16)") if q else "float twin (fp16)"
    q = (target.get("qnn") or {}).get("quantized_in") or {}
    return (f"weight grids kept {q.get('weight_grid_kept')} of {q.get('int8_weights_in_model')}; activation "
            f"ranges used {q.get('activation_ranges_used')} of {q.get('activation_ranges_in_model')}")


def main(argv=None) -> int:
    from edgepack_runtime.bundle import Bundle

    from edgepack.build import build
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--calib", type=int, default=16)
    ap.add_argument("--holdout", type=int, default=8)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    case = families_data.case("smart_turn_qdq", args.calib + args.holdout, seed=3)
    rows = []
    print("| target | precision | verdict | backend | min cosine | max rel err | SNR dB | model's quantization "
          "| target file bytes | build s |\n|---|---|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_qin_") as tmp:
        npz = Path(tmp) / "turn.npz"
        np.savez(npz, **{k: np.stack([s[k] for s in case.samples]) for k in case.samples[0]})
        for spec in filter(None, args.rows.split(",")):
            target, precision = spec.split(":")
            t0 = time.perf_counter()
            try:
                res = build(case.path, targets=[target], precision={target: precision},
                            input_shapes=case.input_shapes, calibration=npz,
                            holdout=args.holdout / (args.calib + args.holdout), allow_mismatch=True,
                            out=Path(tmp) / f"{target}.{precision}.edgepack")
                t = res.manifest["targets"][0]
                p = t["parity"]
                row = {"target": target, "precision": precision, "passed": p["passed"], "backend": p["backend"],
                       "min_cosine": p["min_cosine"], "max_rel_error": p["max_rel_error"],
                       "min_snr_db": p["min_snr_db"], "kept": kept(t), "bytes": Bundle.open(res.path).size(t["file"]),
                       "seconds": time.perf_counter() - t0}
            except Exception as exc:           # a failure is a result too
                row = {"target": target, "precision": precision, "error": f"{type(exc).__name__}: {exc}"[:300],
                       "seconds": time.perf_counter() - t0}
            rows.append(row)
            if "error" in row:
                print(f"| {target} | {precision} | error | — | — | — | — | {row['error']} | — | {row['seconds']:.0f} |")
            else:
                print(f"| {target} | {precision} | {'pass' if row['passed'] else 'fail'} | {row['backend']} "
                      f"| {row['min_cosine']:.5f} | {row['max_rel_error']:.4f} | {row['min_snr_db']:.1f} "
                      f"| {row['kept']} | {row['bytes']} | {row['seconds']:.0f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
