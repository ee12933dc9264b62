"""Function-preserving graph transforms that make a float ONNX model quantize better, for every target.

    model, record = apply(model, calib_samples, {"cle": "auto", "smooth": "on"}, evaluate=figures_of)

``norms``            decomposed layer norms and softmaxes fused into LayerNormalization / Softmax (``norms.py``)
``cle``              cross-layer equalization of Conv -> Relu/LeakyRelu/PRelu -> Conv pairs (``cle.py``)
``smooth``           SmoothQuant-style migration of activation outliers into matmul weights (``smooth.py``)
``adaround``         int8 weight rounding fitted per layer on the calibration inputs (``adaround.py``)
``sum_round``        int8 weight rounding that keeps each convolution kernel's sum (``sumround.py``)
``bias_correction``  the expected int8-weight error of each Conv / FC taken out of its bias (``biascorr.py``)

Each has a mode: ``on`` applies it, ``off`` skips it, ``auto`` (the default, but ``off`` for adaround, whose
per-layer fits take minutes on a large model) applies it, measures the
quantized candidate with ``evaluate(model) -> figures`` (the target's own int8 on its held-out split:
``min_snr_db``, ``min_cosine``, ``max_rel_error``, ``passed``) and keeps it only when the figures improve.
Without ``evaluate``, ``auto`` means ``off``. They run in the order above, each on the result of the ones
kept before it (norms first: smoothing works on LayerNormalization nodes; bias correction last: it needs the
final weights; after adaround the weights it rounded are already on the int8 grid and have no error left to
correct).
"""
from __future__ import annotations

from typing import Callable

import onnx

from ..errors import EdgepackError
from .adaround import adaround
from .biascorr import correct
from .cle import equalize
from .norms import fuse as fuse_norms
from .smooth import smooth
from .sumround import sum_round

ORDER = ("norms", "cle", "smooth", "adaround", "sum_round", "bias_correction")
DEFAULTS = {"norms": "auto", "cle": "auto", "smooth": "auto", "adaround": "off", "sum_round": "auto",
            "bias_correction": "auto"}   # adaround: minutes
MODES = ("auto", "on", "off")
ALIASES = {"sumround": "sum_round", "bias": "bias_correction", "smoothquant": "smooth", "equalize": "cle", "fuse_norms": "norms"}
MIN_GAIN_DB = 0.1          # auto keeps a transform when the held-out SNR rises by more than this
MAX_ERROR_RISE = 1.1       # ... and the worst relative error does not grow by more than 10 %


def _run(name: str, model: onnx.ModelProto, samples: list[dict]) -> tuple[onnx.ModelProto, dict]:
    """(the transformed model: ``model`` edited in place, or a new object; info with ``applies``)."""
    if name == "norms":
        model, info = fuse_norms(model)
        return model, {**info, "applies": info["layernorms"] + info["softmaxes"] > 0}
    if name == "cle":
        info = equalize(model)
        return model, {**info, "applies": info["pairs"] > 0}
    if name == "smooth":
        info = smooth(model, samples)
        return model, {**info, "applies": info["smoothed"] > 0}
    if name == "adaround":
        info = adaround(model, samples)
        return model, {**info, "applies": info["layers"] > 0}
    if name == "sum_round":
        info = sum_round(model)
        return model, {**info, "applies": info["weights_moved"] > 0}
    info = correct(model, samples)
    return model, {**info, "applies": info["layers"] > 0}


def parse(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["cle=off", "smooth=on", "all=off"]`` -> settings; EdgepackError naming the bad item."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, mode = item.partition("=")
        name, mode = ALIASES.get(name.strip(), name.strip()), mode.strip()
        if not sep or (name not in ORDER and name != "all") or mode not in MODES:
            raise EdgepackError(f"--transform '{item}' is not NAME=MODE",
                                hint=f"NAME: {', '.join(ORDER)} or all; MODE: {', '.join(MODES)}")
        out.update({n: mode for n in ORDER} if name == "all" else {name: mode})
    return out


def check(settings: dict) -> None:
    """EdgepackError when ``settings`` names an unknown transform or mode."""
    parse([f"{k}={v}" for k, v in settings.items()])


def better(new: dict, old: dict) -> bool:
    """Whether held-out figures ``new`` beat ``old``: the gate's verdict first, then SNR up by more than
    MIN_GAIN_DB with the worst error (relative to the output's range) not up by more than MAX_ERROR_RISE."""
    if new.get("passed", False) != old.get("passed", False):
        return bool(new.get("passed"))
    return (new["min_snr_db"] > old["min_snr_db"] + MIN_GAIN_DB
            and new["max_rel_error"] <= old["max_rel_error"] * MAX_ERROR_RISE)


def _figures(f: dict) -> dict:
    keys = ("min_snr_db", "min_cosine", "max_rel_error", "passed")
    return {k: (round(f[k], 6) if isinstance(f[k], float) else f[k]) for k in keys if k in f}


def apply(model: onnx.ModelProto, samples: list[dict], settings: dict | None = None,
          evaluate: Callable[[onnx.ModelProto], dict] | None = None,
          progress: Callable[[str], None] = lambda s: None) -> tuple[onnx.ModelProto, dict]:
    """The transformed model (``model`` itself when nothing was kept; never edited) and the record:
    ``{"baseline": figures, "tried": [{"name", "mode", "kept", "info", "figures"}], "kept": [names]}``."""
    settings = {**DEFAULTS, **(settings or {})}
    check(settings)
    current, base = model, None
    record: dict = {"tried": [], "kept": []}
    for name in ORDER:
        mode = settings[name]
        entry: dict = {"name": name, "mode": mode, "kept": False}
        record["tried"].append(entry)
        if mode == "off" or (mode == "auto" and evaluate is None):
            entry["why"] = "off" if mode == "off" else "auto without a measurement"
            continue
        progress(f"transform {name}")
        candidate = onnx.ModelProto()
        candidate.CopyFrom(current)
        candidate, entry["info"] = _run(name, candidate, samples)
        if not entry["info"].pop("applies"):
            entry["why"] = "nothing in the graph it applies to"
            continue
        if mode == "auto":
            if base is None:
                base = evaluate(current)
                record["baseline"] = _figures(base)
            figures = evaluate(candidate)
            entry["figures"] = _figures(figures)
            if not better(figures, base):
                entry["why"] = "held-out figures not better"
                continue
            base = figures
        else:
            base = None                 # an `on` transform changed the model the figures were of
        current = candidate
        entry["kept"] = True
        record["kept"].append(name)
    return current, record
