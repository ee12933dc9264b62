"""The onnx2tf baseline (ONNX -> TFLite through TensorFlow) in a virtual environment of its own.

onnx2tf pins old releases (numpy 1.26, TensorFlow 2.19, onnx 1.19) that cannot share our environment, so
``ensure_env()`` builds ``<cache>/venvs/onnx2tf`` (cache: ``$EDGEPACK_CACHE`` or ``~/.cache/edgepack``)
once, with the smallest set of packages that converts CNNs, and records the pins in a marker file; a
second call with the same pins does nothing. ``run_onnx2tf()`` converts one model in a subprocess and
returns its wall time (TensorFlow's import included) and the float32 ``.tflite`` it wrote.

    python benchmarks/baseline_env.py                       # install (about 1 min, 2.5 GB)
    python benchmarks/baseline_env.py archonly_light_squeezenet.onnx path/to/model.onnx
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from edgepack.errors import ConversionError, EdgepackError
from edgepack.testing.wheels import cache_root

ONNX2TF_VERSION = "1.29.24"
# onnx2tf is installed with --no-deps: its own list also drags in opencv (only for the ImageDecoder op),
# onnxoptimizer (never imported) and ~25 "simple onnx processing tools" of which it imports two.
PINS = (
    "numpy==1.26.4",
    "tensorflow==2.19.0",
    "tf-keras==2.19.0",
    "onnx==1.19.1",
    "onnxruntime==1.23.0",
    "onnxsim==0.4.36",            # run as a command to fold constants first; failing it, Conv breaks
    "onnx-graphsurgeon==0.5.8",
    "sng4onnx==2.0.1",            # names unnamed nodes (imported at start-up)
    "sne4onnx==2.0.1",            # sub-graph extraction (imported during conversion checks)
    "ai-edge-litert==2.1.0",
    "protobuf==4.25.5",
    "h5py==3.11.0",
    "ml-dtypes==0.5.1",
    "flatbuffers==25.12.19",
    "psutil==5.9.5",
    "requests==2.32.5",
)
MARKER = "edgepack-pins.txt"
CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def venv_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the onnx2tf environment lives."""
    return cache_root(cache_dir) / "venvs" / "onnx2tf"


def _marker_text() -> str:
    return "\n".join((f"onnx2tf=={ONNX2TF_VERSION}", *PINS)) + "\n"


def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check", *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise EdgepackError(f"installing the onnx2tf environment failed: {tail}",
                            hint=f"delete {venv} and retry; PyPI must be reachable")


def ensure_env(cache_dir: str | os.PathLike | None = None, *, force: bool = False) -> Path:
    """Create or update the onnx2tf venv; returns its ``bin`` folder. Idempotent via a pin marker."""
    venv = venv_dir(cache_dir)
    marker = venv / MARKER
    if not force and marker.is_file() and marker.read_text() == _marker_text():
        return venv / "bin"
    if not (venv / "bin" / "python").is_file():
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _pip(venv, "--no-deps", f"onnx2tf=={ONNX2TF_VERSION}")
    _pip(venv, *PINS)
    marker.write_text(_marker_text())
    return venv / "bin"


def prepare_model(onnx_path: Path, dest: Path) -> Path:
    """Copy the model to ``dest`` for onnx2tf, which rewrites its input file in place.

    IR version 3 models (opset <= 8/9 era) list every initializer as a graph input; onnxsim rejects
    initializers that are not inputs there and onnx2tf treats the listed ones as real inputs, so such
    models are lifted to IR 4 with initializer-backed inputs removed. Nothing else changes.
    """
    model = onnx.load(str(onnx_path))
    if model.ir_version >= 4:
        shutil.copyfile(onnx_path, dest)
        return dest
    inits = {t.name for t in model.graph.initializer}
    keep = [v for v in model.graph.input if v.name not in inits]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    model.ir_version = 4
    onnx.save(model, str(dest))
    return dest


def write_calibration_stub(folder: Path) -> Path:
    """The image sample onnx2tf would otherwise download for 3-channel inputs (seeded uniform noise)."""
    data = np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
    path = folder / CALIBRATION_FILE
    np.save(path, data)
    return path


def _child_env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # onnx2tf runs `onnxsim` by name
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def run_onnx2tf(onnx_path: str | os.PathLike, out_dir: str | os.PathLike, extra_args=(), *,
                cache_dir: str | os.PathLike | None = None, timeout: float = 3600) -> tuple[float, Path]:
    """Convert ``onnx_path`` with onnx2tf into ``out_dir``; returns (wall seconds, float32 .tflite path).

    Runs in a temporary working folder holding a copy of the model and the calibration stub; the log
    goes to ``out_dir/onnx2tf.log``. Raises ``ConversionError`` when onnx2tf writes no float32 file.
    """
    bin_dir = ensure_env(cache_dir)
    src, out = Path(onnx_path), Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onnx2tf-") as tmp:
        work = Path(tmp)
        model = prepare_model(src, work / f"{src.stem}.onnx")
        write_calibration_stub(work)
        cmd = [str(bin_dir / "onnx2tf"), "-i", str(model), "-o", str(out), *map(str, extra_args)]
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=work, env=_child_env(bin_dir), capture_output=True,
                                text=True, timeout=timeout)
        seconds = time.perf_counter() - start
    (out / "onnx2tf.log").write_text(result.stdout + result.stderr)
    tflite = out / f"{src.stem}_float32.tflite"
    if result.returncode != 0 or not tflite.is_file():
        raise ConversionError(f"onnx2tf failed on {src.name} (exit {result.returncode})",
                              hint=f"see {out / 'onnx2tf.log'}")
    return seconds, tflite


def _resolve(arg: str) -> Path:
    if Path(arg).is_file():
        return Path(arg)
    from edgepack.testing import corpus
    return corpus.fetch(arg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="ONNX files or corpus names to convert")
    parser.add_argument("--out", default=None, help="output root (default: a temporary folder)")
    args = parser.parse_args(argv)
    print(f"onnx2tf environment: {ensure_env().parent}")
    root = Path(args.out or tempfile.mkdtemp(prefix="onnx2tf-out-"))
    for name in args.models:
        path = _resolve(name)
        seconds, tflite = run_onnx2tf(path, root / path.stem)
        print(f"{path.name}: {seconds:.1f} s -> {tflite} ({tflite.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
