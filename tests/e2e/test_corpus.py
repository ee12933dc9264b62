"""Every ONNX model in the public corpus builds for the CPU target and matches onnxruntime (fp32)."""
from __future__ import annotations

import pytest

from edgepack.build import build
from edgepack.testing.corpus import FROZEN, INPUT_SHAPES, NEEDS_REAL_INPUTS, NOT_FOR_CPU, entries, fetch
from edgepack_runtime import Runtime

SHAPES = INPUT_SHAPES
# models that need real inputs are built in tests/testing/test_corpus_families.py instead
ONNX_MODELS = [e.name for e in entries() if e.format == "onnx" and e.name not in NOT_FOR_CPU
               and e.name not in NEEDS_REAL_INPUTS]

# fp32 TFLite vs onnxruntime: the build's max relative error (max |diff| / max |reference| over its 8 seeded
# synthetic samples) may not exceed about 3x what was measured (in parentheses), so a 10x regression fails.
# Most archonly_light_* nets output a uniform softmax (0.001 per class) on these inputs (error 0.0): 1e-6 floor.
FP32_MAX_REL_ERROR = {
    "ocr_ppocr_mobile_v2_cls.onnx": 6e-6,            # (1.9e-6)
    "ocr_ppocrv4_det.onnx": 1e-4,                    # (3.4e-5)
    "audio_oww_melspectrogram.onnx": 1.5e-6,         # (4.8e-7)
    "audio_oww_embedding_model.onnx": 2.5e-6,        # (8.2e-7)
    "audio_oww_alexa_v0.1.onnx": 1e-6,               # (2.0e-7)
    "audio_basic_pitch_nmp.onnx": 6e-6,              # (1.8e-6)
    "bytes_magika_standard_v3_3.onnx": 1.2e-5,       # (3.6e-6)
    "archonly_light_densenet121.onnx": 1.5e-5,       # (4.7e-6)
    # a QDQ model: its float build runs without the model's activation rounding, against onnxruntime running it
    "audio_smart_turn_v3_2_cpu_qdq.onnx": 0.06,      # (2.0e-2)
    "vad_silero_vad.onnx": 5e-6,                     # (1.6e-6; sr frozen to 16000, its LSTM unrolled)
}
FP32_MAX_REL_ERROR_FLOOR = 1e-6
# a model added to the corpus without a measured bound is held to the loosest one until it gets its own
FP32_MAX_REL_ERROR_UNMEASURED = 1e-4


@pytest.mark.forked
@pytest.mark.parametrize("name", ONNX_MODELS)
def test_corpus_model_builds_and_matches(name, tmp_path):
    path = fetch(name)
    shapes, values = FROZEN.get(name, (SHAPES.get(name), None))
    result = build(path, targets=["cpu"], input_shapes=shapes, input_values=values, out=tmp_path / "m.edgepack")
    cpu = result.manifest["targets"][0]
    assert cpu["parity"]["passed"], cpu["parity"]
    assert cpu["parity"]["min_cosine"] >= 0.9999
    if name.startswith("archonly_light_"):
        bound = FP32_MAX_REL_ERROR.get(name, FP32_MAX_REL_ERROR_FLOOR)
    else:
        bound = FP32_MAX_REL_ERROR.get(name, FP32_MAX_REL_ERROR_UNMEASURED)
    assert cpu["parity"]["max_rel_error"] <= bound, (cpu["parity"]["max_rel_error"], bound)
    with Runtime.open(result.path) as rt:
        check = rt.self_check()
    assert check["passed"] and check["samples"] == 3


@pytest.mark.forked
@pytest.mark.parametrize("precision,max_ratio", [("fp16", 0.65), ("int8-dynamic", 0.5)])
def test_compressed_precisions_on_a_real_model(precision, max_ratio, tmp_path):
    name = "ocr_ppocr_mobile_v2_cls.onnx"
    ref = build(fetch(name), targets=["cpu"], input_shapes=SHAPES[name], out=tmp_path / "fp32.edgepack")
    res = build(fetch(name), targets=["cpu"], input_shapes=SHAPES[name], precision=precision,
                out=tmp_path / f"{precision}.edgepack")
    cpu, base = res.manifest["targets"][0], ref.manifest["targets"][0]
    assert cpu["precision"] == precision and cpu["parity"]["passed"]
    # synthetic inputs give this 2-class model near-tied scores, so a flip or two is noise, not error
    assert cpu["parity"]["outputs"]["save_infer_model/scale_0.tmp_1"]["top1_agreement"] >= 0.75
    assert cpu["info"]["size"] <= max_ratio * base["info"]["size"]
    with Runtime.open(res.path) as rt:
        assert rt.self_check()["passed"]


@pytest.mark.forked
@pytest.mark.parametrize("name,max_ratio", [("ocr_ppocr_mobile_v2_cls.onnx", 0.55),
                                            ("bytes_magika_standard_v3_3.onnx", 0.35),
                                            ("audio_oww_embedding_model.onnx", 0.35)])
def test_full_int8_on_real_models(name, max_ratio, tmp_path):
    """Calibrated int8 on real models: passes its gate (magika only with layers kept float by mixed
    precision), is much smaller, runs float-in/float-out and passes the on-device self-check."""
    ref = build(fetch(name), input_shapes=SHAPES.get(name), out=tmp_path / "fp32.edgepack")
    res = build(fetch(name), input_shapes=SHAPES.get(name), precision="int8", out=tmp_path / "int8.edgepack")
    cpu, base = res.manifest["targets"][0], ref.manifest["targets"][0]
    assert cpu["precision"] == "int8" and cpu["parity"]["passed"], cpu["parity"]
    assert cpu["parity"]["mean_cosine"] >= 0.98 and cpu["parity"]["min_snr_db"] >= 15
    assert cpu["info"]["size"] <= max_ratio * base["info"]["size"]
    q = cpu["quantization"]
    assert q["int8_ops"] > 10 and q["layers"] and q["culprits"]
    assert res.manifest["calibration"]["synthetic"] is True
    with Runtime.open(res.path) as rt:
        assert rt.self_check()["passed"]
