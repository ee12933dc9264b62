"""Models and realistic inputs of ``bench_int8_families.py``, one ``qnn_data.Case`` per family.

The families of issue #14: PP-OCR det (DBNet, 320x320), PP-OCR rec (CTC over 6,625 characters), PP-OCR cls,
the MiniLM sentence encoder, openwakeword's embedding model and wake-word head, magika, basic-pitch and the
Smart Turn v3.2 QDQ audio encoder. Inputs reuse ``qnn_data`` / ``qnn_models`` where they exist (text pages,
rendered words, speech-like audio through openwakeword's chain, real file bytes, word-piece ids, notes);
added here: rendered text lines for the recognizer (RapidOCR's resize-and-pad to 48x320) and Whisper log-mel
features of speech-like audio for Smart Turn. ``case(key, n, seed)``: ``n`` samples, calibration first.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import qnn_data as data  # noqa: E402
from benchmarks import qnn_models  # noqa: E402
from edgepack.testing import wheels  # noqa: E402
from edgepack.testing.corpus import INPUT_SHAPES, PASS_THROUGH_OUTPUTS, fetch, without_outputs  # noqa: E402

# family key -> corpus model (the order the benchmark runs them in: small first)
FAMILIES = {
    "oww_alexa": "audio_oww_alexa_v0.1.onnx",
    "oww_embedding": "audio_oww_embedding_model.onnx",
    "ppocr_cls": "ocr_ppocr_mobile_v2_cls.onnx",
    "magika": "bytes_magika_standard_v3_3.onnx",
    "ppocr_det": "ocr_ppocrv4_det.onnx",
    "ppocr_rec": "ocr_ppocrv4_rec.onnx",
    "minilm": "text_minilm_l3_paraphrase.onnx",
    "basic_pitch": "audio_basic_pitch_nmp.onnx",
    "smart_turn_qdq": "audio_smart_turn_v3_2_cpu_qdq.onnx",
}
REC_H, REC_W = 48, 320


def _work() -> Path:
    d = wheels.cache_root() / "bench_families"
    d.mkdir(parents=True, exist_ok=True)
    return d


def text_lines(n: int, seed: int) -> list[dict]:
    """Lines of random words rendered dark on light, resized to 48 px high keeping the aspect, normalised
    ((x/255 - 0.5) / 0.5) and right-padded with zeros to 320 px, as RapidOCR feeds PP-OCRv4 rec."""
    from PIL import Image, ImageDraw
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = " ".join(data._word(rng) for _ in range(rng.randint(1, 3)))
        font = data._font(rng.randint(24, 34))
        w = int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font)) + 16
        img = Image.new("RGB", (w, 48), tuple(rng.randint(190, 255) for _ in range(3)))
        ImageDraw.Draw(img).text((8, rng.randint(2, 8)), text, fill=tuple(rng.randint(0, 70) for _ in range(3)),
                                 font=font)
        new_w = min(REC_W, max(1, int(round(REC_H * w / 48))))
        img = img.resize((new_w, REC_H), Image.BILINEAR)
        x = np.zeros((3, REC_H, REC_W), np.float32)
        x[:, :, :new_w] = ((np.asarray(img, np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)
        out.append({"x": x[None]})
    return out


def _mel_filters(sr: int = 16000, n_fft: int = 400, n_mels: int = 80) -> np.ndarray:
    """Slaney-scale triangular mel filters with Slaney area normalisation (Whisper's), [n_mels, n_fft//2+1]."""
    def hz_to_mel(f):
        f = np.asarray(f, np.float64)
        lin = f / (200.0 / 3)
        return np.where(f >= 1000, 15 + np.log(np.maximum(f, 1e-9) / 1000) / (np.log(6.4) / 27), lin)

    def mel_to_hz(m):
        m = np.asarray(m, np.float64)
        return np.where(m >= 15, 1000 * np.exp((np.log(6.4) / 27) * (m - 15)), m * 200.0 / 3)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    pts = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(8000), n_mels + 2))
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = pts[i], pts[i + 1], pts[i + 2]
        fb[i] = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
        fb[i] *= 2.0 / (hi - lo)
    return fb


def whisper_features(audio: np.ndarray, frames: int = 800) -> np.ndarray:
    """Whisper's log-mel input ([80, frames]) of 16 kHz audio: 25 ms Hann STFT every 10 ms, power, mel,
    log10 clamped 8 decades under the peak, (x + 4) / 4. Audio is left-padded with zeros to frames*160."""
    need = frames * 160
    audio = np.concatenate([np.zeros(max(0, need - audio.size), np.float32), audio[-need:]])
    padded = np.pad(audio, 200, mode="reflect")
    window = np.hanning(401)[:-1]
    idx = np.arange(400)[None, :] + 160 * np.arange(frames + 1)[:, None]
    spec = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2
    mel = _mel_filters() @ spec[:-1].T
    logm = np.log10(np.maximum(mel, 1e-10))
    logm = np.maximum(logm, logm.max() - 8.0)
    return ((logm + 4.0) / 4.0).astype(np.float32)


def turn_features(n: int, seed: int) -> list[dict]:
    """Smart Turn's input: Whisper features of 2-8 s of speech-like audio (the end of a turn or not)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        audio = data.speech_like(rng.uniform(2, 8), 16000, rng, peak=rng.uniform(0.1, 0.9))
        if rng.random() < 0.5:          # trailing silence, as at the end of a turn
            audio = np.concatenate([audio, 0.003 * rng.normal(size=int(rng.uniform(0.2, 1.5) * 16000))])
        out.append({"input_features": whisper_features(audio.astype(np.float32))[None]})
    return out


def minilm_path() -> Path:
    """The corpus MiniLM without its two int64 outputs that only copy the inputs (``PASS_THROUGH_OUTPUTS``)."""
    name = FAMILIES["minilm"]
    dest = _work() / name.replace(".onnx", ".float_outputs.onnx")
    if not dest.is_file():
        m = without_outputs(onnx.load(str(fetch(name))), PASS_THROUGH_OUTPUTS[name])
        onnx.save(m, str(dest))
    return dest


def case(key: str, n: int, seed: int = 0) -> data.Case:
    """``n`` samples of family ``key`` (see ``FAMILIES``)."""
    name = FAMILIES[key]
    if key == "ppocr_rec":
        return data.Case(name, fetch(name), INPUT_SHAPES[name], text_lines(n, seed),
                         "rendered text lines, 48 px high, padded to 320")
    if key == "minilm":
        seq = data.MINILM_SEQ
        return data.Case(name, minilm_path(), INPUT_SHAPES[name], data.token_ids(n, seed),
                         f"random word-piece ids, {seq} tokens with padding",
                         notes=["int64 pass-through outputs dropped"])
    if key == "smart_turn_qdq":
        return data.Case(name, fetch(name), INPUT_SHAPES[name], turn_features(n, seed),
                         "Whisper log-mel of speech-like audio, 2-8 s")
    return qnn_models.case(name, n, seed)
