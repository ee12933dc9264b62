"""Build cost: edgepack's whole `build` against onnx2tf's conversion alone, time and peak memory, same run.

Per model, each side runs in a fresh process under GNU time (`/usr/bin/time`), which reports the wall time,
the CPU time and the peak resident set size (the largest of the process and the children it waited for:
for onnx2tf that is its own Python process, `onnxsim` included). edgepack runs
`edgepack build MODEL --target cpu --json` (load, synthetic samples, fp32 reference, conversion, latency,
verification in LiteRT, bundle); its per-stage figures come from the manifest it prints. onnx2tf runs through
`benchmarks/baseline_env.run_onnx2tf` in its own venv (TensorFlow's import included). Where onnx2tf fails,
edgepack's figures are still printed, with the failure.

Goal (issue #8, item 10): edgepack's peak RSS at most a quarter of onnx2tf's, and its whole build at least
10x faster than onnx2tf's conversion. Both ratios are printed (`rss x` = onnx2tf / edgepack, so >= 4 meets the
goal; `speed-up` = onnx2tf s / edgepack s, >= 10 meets it), and the CPU-time ratio too, which a busy host
disturbs less than wall time.

    python benchmarks/bench_build_cost.py [names...] [--stages] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgepack.testing.corpus import INPUT_SHAPES, fetch  # noqa: E402

NAMES = ["ocr_ppocrv4_det.onnx", "archonly_light_resnet50.onnx", "archonly_light_vgg19.onnx",
         "bytes_magika_standard_v3_3.onnx", "audio_basic_pitch_nmp.onnx", "ocr_ppocr_mobile_v2_cls.onnx",
         "archonly_light_squeezenet.onnx", "audio_oww_embedding_model.onnx", "audio_oww_melspectrogram.onnx",
         "audio_oww_alexa_v0.1.onnx"]
TIME_FORMAT = "EPTIME %e %U %S %M"
ONNX2TF = """
import sys
sys.path.insert(0, {root!r})
from benchmarks.baseline_env import run_onnx2tf
seconds, tflite = run_onnx2tf({path!r}, {out!r}, {extra!r})
print("O2T_SECONDS", seconds)
"""


def timed(cmd: list[str], **kw) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``cmd`` under GNU time; returns the process and {wall, cpu, peak_mb} of its whole tree."""
    proc = subprocess.run(["/usr/bin/time", "-f", TIME_FORMAT, *cmd], capture_output=True, text=True, **kw)
    line = next((x for x in reversed(proc.stderr.splitlines()) if x.startswith("EPTIME ")), None)
    if line is None:
        raise RuntimeError(f"GNU time printed nothing for {cmd[:3]}: {proc.stderr[-300:]}")
    wall, user, system, kb = line.split()[1:]
    return proc, {"wall": float(wall), "cpu": float(user) + float(system), "peak_mb": int(kb) / 1024}


def shape_args(shapes: dict, flag: str, sep: str) -> list[str]:
    out = []
    for name, dims in shapes.items():
        out += [flag, f"{name}{sep}{','.join(map(str, dims))}"]
    return out


def edgepack_build(path: Path, shapes: dict, out: Path) -> dict:
    cmd = [sys.executable, "-m", "edgepack.cli.main", "build", str(path), "--target", "cpu", "-o", str(out),
           "--json", *shape_args(shapes, "--input-shape", "=")]
    proc, fig = timed(cmd, cwd=ROOT)
    if proc.returncode != 0:
        tail = [x for x in proc.stderr.splitlines() if not x.startswith("EPTIME ")][-3:]
        return dict(fig, error=f"edgepack exit {proc.returncode}: {' | '.join(tail)[-300:]}")
    manifest = json.loads(proc.stdout)["manifest"]
    build = manifest["build"]
    return dict(fig, stages=build["stages"], build_seconds=build["seconds"], build_cpu=build["cpu_seconds"])


def onnx2tf_convert(path: Path, shapes: dict, out: Path) -> dict:
    extra = ["-ois", *[f"{k}:{','.join(map(str, v))}" for k, v in shapes.items()]] if shapes else []
    script = ONNX2TF.format(root=str(ROOT), path=str(path), out=str(out), extra=extra)
    proc, fig = timed([sys.executable, "-c", script])
    seconds = next((float(x.split()[1]) for x in proc.stdout.splitlines() if x.startswith("O2T_SECONDS")), None)
    if proc.returncode != 0 or seconds is None:
        why = [x for x in proc.stderr.splitlines()
               if x.strip() and not x.startswith(("EPTIME ", "Command exited"))][-1:]
        return dict(fig, error=f"onnx2tf failed: {' '.join(why)[-200:]} (log: {out / 'onnx2tf.log'})")
    return dict(fig, wall=seconds)       # onnx2tf's own wall time (the helper's start-up left out)


def verdict(ours: dict, theirs: dict) -> str:
    if "error" in theirs or "error" in ours:
        return "n/a"
    ok_rss = theirs["peak_mb"] / ours["peak_mb"] >= 4
    ok_time = theirs["wall"] / ours["wall"] >= 10
    return {(True, True): "met", (True, False): "time missed", (False, True): "rss missed"}.get(
        (ok_rss, ok_time), "both missed")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=NAMES)
    ap.add_argument("--stages", action="store_true", help="print edgepack's per-stage figures too")
    ap.add_argument("--json", help="write every figure to this file")
    args = ap.parse_args()
    head = (f"{'model':33} {'onnx2tf s':>9} {'ours s':>7} {'speed-up':>8} {'cpu x':>6} "
            f"{'onnx2tf MB':>10} {'ours MB':>8} {'rss x':>6}  goal")
    print(head, flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-build-cost-") as tmp:
        for name in args.models:
            path, shapes = fetch(name), INPUT_SHAPES.get(name, {})
            theirs = onnx2tf_convert(path, shapes, Path(tmp) / "o2t" / path.stem)
            ours = edgepack_build(path, shapes, Path(tmp) / f"{path.stem}.edgepack")
            rows.append({"model": name, "edgepack": ours, "onnx2tf": theirs})
            if "error" in ours:
                print(f"{name:33} {ours['error']}", flush=True)
                continue
            if "error" in theirs:
                print(f"{name:33} {'failed':>9} {ours['wall']:7.2f} {'-':>8} {'-':>6} {'-':>10} "
                      f"{ours['peak_mb']:8.0f} {'-':>6}  n/a ({theirs['error']}); ours: cpu {ours['cpu']:.2f} s",
                      flush=True)
            else:
                print(f"{name:33} {theirs['wall']:9.2f} {ours['wall']:7.2f} {theirs['wall'] / ours['wall']:7.1f}x "
                      f"{theirs['cpu'] / ours['cpu']:5.1f}x {theirs['peak_mb']:10.0f} {ours['peak_mb']:8.0f} "
                      f"{theirs['peak_mb'] / ours['peak_mb']:5.1f}x  {verdict(ours, theirs)}  "
                      f"(cpu s: onnx2tf {theirs['cpu']:.1f}, ours {ours['cpu']:.1f})", flush=True)
            if args.stages:
                for s in ours["stages"]:
                    print(f"    {s['name']:14} {s['seconds']:7.2f} s  cpu {s['cpu_seconds']:6.2f} s  "
                          f"peak {s['peak_rss_mb'] or 0:7.0f} MB", flush=True)
    print(f"host: {os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
