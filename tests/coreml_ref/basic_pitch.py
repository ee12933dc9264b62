"""basic-pitch's own .mlpackage (Apple's converter, from TensorFlow) in the reference executor against its
ONNX twin in onnxruntime, on several synthetic audio inputs.

    python3 -m tests.coreml_ref.basic_pitch          # prints the figures per output, fp32 and fp16

fp32: the package as shipped (its program is fp32 throughout). fp16: the same MIL program loaded back with
coremltools' milproto frontend and converted with ``compute_precision=FLOAT16`` (coremltools' own fp16
pass types every intermediate fp16), then run fp16-faithfully; the reference stays onnxruntime in fp32.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

MLPACKAGE, ONNX = "audio_basic_pitch_nmp.mlpackage", "audio_basic_pitch_nmp.onnx"
# Core ML output -> ONNX output (same net; names from the two exporters)
OUTPUTS = {"Identity": "StatefulPartitionedCall:0", "Identity_1": "StatefulPartitionedCall:1",
           "Identity_2": "StatefulPartitionedCall:2"}
SAMPLES, RATE = 43844, 22050


def audio_inputs(n: int = 4) -> list[np.ndarray]:
    """Different 2 s clips at 22.05 kHz: a chord, a chirp, harmonic notes with decay, white noise."""
    t = np.arange(SAMPLES) / RATE
    rng = np.random.default_rng(7)
    clips = [0.3 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)),
             0.5 * np.sin(2 * np.pi * (100 * t + 450 * t ** 2)),
             sum(0.4 / h * np.sin(2 * np.pi * h * f0 * t) * np.exp(-3 * ((t - s) % 0.5)) * (t >= s)
                 for f0, s in ((196.0, 0.0), (392.0, 0.5), (523.3, 1.0)) for h in (1, 2, 3)),
             0.2 * rng.standard_normal(SAMPLES)]
    clips += [0.3 * rng.standard_normal(SAMPLES) * np.sin(2 * np.pi * 3 * t) for _ in range(max(0, n - 4))]
    return [np.asarray(c, np.float32).reshape(1, SAMPLES, 1) for c in clips[:n]]


def fp16_package(src: Path, dest: Path) -> Path:
    """Apple's program retyped to fp16 by coremltools (milproto load, convert with FLOAT16)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
    model = ct.models.MLModel(str(src), skip_model_load=True)
    spec = model.get_spec()
    prog = milproto_load(spec, specification_version=spec.specificationVersion, file_weights_dir=model.weights_dir)
    ct.convert(prog, convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
               minimum_deployment_target=ct.target.iOS15).save(str(dest))
    return dest


def onnx_outputs(onnx_path: Path, inputs: list[np.ndarray]) -> list[dict]:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    return [dict(zip(names, sess.run(None, {name: x}))) for x in inputs]


def measure(package: Path, onnx_path: Path, inputs: list[np.ndarray]) -> dict:
    """compare_output figures per Core ML output, plus load and run times."""
    from edgepack_runtime.backends.coreml_ref import load
    from edgepack_runtime.compare import compare_output
    t0 = time.perf_counter()
    prog = load(package)
    t1 = time.perf_counter()
    got = [prog.run({"input_2": x}) for x in inputs]
    t2 = time.perf_counter()
    ref = onnx_outputs(onnx_path, inputs)
    figures = {out: compare_output([g[out] for g in got], [r[onnx] for r in ref]) for out, onnx in OUTPUTS.items()}
    return {"precision": prog.compute_precision, "inputs": len(inputs), "load_s": round(t1 - t0, 2),
            "run_s_per_input": round((t2 - t1) / len(inputs), 2), "outputs": figures}


def main() -> int:
    import tempfile
    from edgepack.testing.corpus import fetch
    package, onnx_path = fetch(MLPACKAGE), fetch(ONNX)
    inputs = audio_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        results = {"fp32": measure(package, onnx_path, inputs),
                   "fp16": measure(fp16_package(package, Path(tmp) / "fp16.mlpackage"), onnx_path, inputs)}
    for prec, res in results.items():
        print(f"{prec}: program {res['precision']}, {res['inputs']} inputs, load {res['load_s']} s, "
              f"run {res['run_s_per_input']} s/input")
        for out, f in res["outputs"].items():
            print(f"  {out:10} cosine {f['cosine']:.7f}  max_abs {f['max_abs']:.3g}  rel_error {f['rel_error']:.3g}"
                  f"  snr {f['snr_db']:.1f} dB")
    if "--json" in sys.argv:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
