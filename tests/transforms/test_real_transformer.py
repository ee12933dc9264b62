"""Smoothing on a real sentence-transformer (the corpus MiniLM): the float function kept."""
from __future__ import annotations

import numpy as np

from edgepack.model import load_model
from edgepack.model.ort import reference_outputs
from edgepack.testing.corpus import INPUT_SHAPES, fetch
from edgepack.transforms import apply

from .test_numerics import ONLY, _max_rel


def test_smooth_real_transformer():
    name = "text_minilm_l3_paraphrase.onnx"
    model = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
    rng = np.random.default_rng(0)
    data = []
    for length in (20, 64, 41, 9, 33, 64):
        ids = np.zeros((1, 64), np.int64)
        ids[0, :length] = np.concatenate([[101], rng.integers(1996, 29600, length - 2), [102]])
        data.append({"input_ids": ids, "attention_mask": (np.arange(64) < length).astype(np.int64)[None]})
    out, record = apply(model, data[:4], ONLY["smooth"])
    info = next(t for t in record["tried"] if t["name"] == "smooth")["info"]
    assert record["kept"] == ["smooth"] and info["candidates"] == 6 and info["smoothed"] >= 3
    floats = lambda runs: [{k: v for k, v in r.items() if v.dtype == np.float32} for r in runs]  # noqa: E731
    assert _max_rel(floats(reference_outputs(out, data[4:])), floats(reference_outputs(model, data[4:]))) < 1e-4
