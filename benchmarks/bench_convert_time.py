"""Conversion time: `edgepack build --target cpu` against onnx2tf (through TensorFlow), same models, one run.

Both sides are timed as a user runs them: a fresh process per model, wall time including interpreter start
and imports. edgepack's time also includes what onnx2tf does not do: verifying the converted model in
LiteRT against onnxruntime and writing a bundle. The in-process conversion time alone (intake + convert,
no verification) is printed too. onnx2tf runs in its own venv (benchmarks/baseline_env.py). Where onnx2tf
fails, edgepack is still timed and the row says why onnx2tf failed; the total counts models both convert.
Peak memory and per-stage figures: benchmarks/bench_build_cost.py.

    python benchmarks/bench_convert_time.py [names...]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.baseline_env import run_onnx2tf  # noqa: E402
from edgepack.testing.corpus import INPUT_SHAPES, fetch  # noqa: E402

NAMES = ["archonly_light_squeezenet.onnx", "archonly_light_resnet50.onnx", "archonly_light_inception_v1.onnx",
         "ocr_ppocr_mobile_v2_cls.onnx", "audio_oww_melspectrogram.onnx", "audio_oww_embedding_model.onnx",
         "audio_oww_alexa_v0.1.onnx", "audio_basic_pitch_nmp.onnx", "bytes_magika_standard_v3_3.onnx"]
MODELS = {name: INPUT_SHAPES.get(name, {}) for name in NAMES}   # the same shape fix is given to both tools


def edgepack_cli(path: Path, shapes: dict, out: Path) -> float:
    cmd = [sys.executable, "-m", "edgepack.cli.main", "build", str(path), "--target", "cpu", "-o", str(out)]
    for name, dims in shapes.items():
        cmd += ["--input-shape", f"{name}={','.join(map(str, dims))}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"edgepack build failed on {path.name}: {proc.stderr.strip()[-500:]}")
    return seconds


def edgepack_convert_only(path: Path, shapes: dict) -> float:
    from edgepack.model import load_model
    from edgepack.targets.tflite import convert
    t0 = time.perf_counter()
    convert(load_model(path, input_shapes=shapes or None))
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=list(MODELS))
    args = ap.parse_args()
    print(f"{'model':34} {'onnx2tf s':>10} {'edgepack s':>11} {'speed-up':>9} {'convert-only s':>15}")
    total_theirs = total_ours = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path, shapes = fetch(name), MODELS.get(name, INPUT_SHAPES.get(name, {}))
            extra = []
            if shapes:
                extra = ["-ois", *[f"{k}:{','.join(map(str, v))}" for k, v in shapes.items()]]
            try:
                theirs, failed = run_onnx2tf(path, Path(tmp) / "o2t" / path.stem, extra)[0], None
            except Exception as exc:  # noqa: BLE001 - report it, and still time edgepack
                theirs, failed = None, str(exc)
            ours = edgepack_cli(path, shapes, Path(tmp) / f"{path.stem}.edgepack")
            inproc = edgepack_convert_only(path, shapes)
            if failed:
                print(f"{name:34} {'failed':>10} {ours:11.2f} {'-':>9} {inproc:15.3f}  onnx2tf: {failed}")
                continue
            total_theirs += theirs
            total_ours += ours
            print(f"{name:34} {theirs:10.2f} {ours:11.2f} {theirs / ours:8.1f}x {inproc:15.3f}")
    if total_ours:
        print(f"{'total (both convert)':34} {total_theirs:10.2f} {total_ours:11.2f} "
              f"{total_theirs / total_ours:8.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
