"""``load_calibration``: any supported source -> checked samples, split into calibration and hold-out."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgepack.model import make_inputs

from .checks import CalibrationError, input_specs
from .folder import LAYOUTS_HINT, require_one_kind, scan
from .images import read_images
from .npyfolder import read_npy_folder
from .npz import read_npz
from .preprocess import read_spec

MAX_HOLDOUT = 0.9
FEW_SAMPLES = 10
SOURCES_HINT = "pass an .npz of input name -> [samples, *input shape], a folder of .npy files, or a folder of images"


@dataclass
class CalibrationSet:
    """Checked samples (input name -> array of the model's input shape, no sample axis)."""

    calib: list[dict[str, np.ndarray]]
    holdout: list[dict[str, np.ndarray]]
    kind: str                   # "npz" | "npy-folder" | "images" | "synthetic"
    source: str | None
    warnings: list[str]
    preprocess: dict | None
    holdout_fraction: float = 0.2
    seed: int = 0
    holdout_is_calib: bool = False  # holdout_fraction 0: accuracy is measured on the calibration samples
    npy_layout: str | None = None   # "per-input" | "per-sample" | "subfolders" for npy folders

    @property
    def all(self) -> list[dict[str, np.ndarray]]:
        """Every distinct sample: calib + holdout (just calib when the hold-out is the calibration set)."""
        return list(self.calib) if self.holdout_is_calib else self.calib + self.holdout

    def describe(self) -> dict:
        """JSON-able summary for the bundle manifest."""
        return {
            "kind": self.kind, "source": self.source, "synthetic": self.kind == "synthetic",
            "counts": {"calib": len(self.calib), "holdout": len(self.holdout), "total": len(self.all)},
            "holdout_fraction": self.holdout_fraction, "holdout_is_calib": self.holdout_is_calib,
            "seed": self.seed, "npy_layout": self.npy_layout, "preprocess": self.preprocess,
            "warnings": list(self.warnings),
        }


def load_calibration(source: str | Path | None, model: onnx.ModelProto, *,
                     preprocess: str | Path | dict | None = None, holdout: float = 0.2, seed: int = 0,
                     synthetic_samples: int = 16, synthetic_bytes: int | None = None) -> CalibrationSet:
    """Load, check and split calibration data for ``model`` (static input shapes).

    ``source``: an ``.npz``, a folder of ``.npy`` files or of images, or None for synthetic samples.
    ``preprocess``: image preprocessing spec (images only). ``holdout``: fraction in [0, 0.9] kept out
    of calibration to measure accuracy; the split is a shuffle seeded by ``seed``. Synthetic samples: at
    most ``synthetic_samples``, fewer (never under ``MIN_SYNTHETIC``) when they would take more than
    ``synthetic_bytes`` (a 1x3x640x640 float input is 4.9 MB a sample, plus its reference outputs).
    Raises ``CalibrationError`` naming what is wrong and what to do.
    """
    if not 0.0 <= holdout <= MAX_HOLDOUT:
        raise CalibrationError(f"holdout fraction {holdout} is outside [0, {MAX_HOLDOUT}]",
                               hint="0.2 keeps a fifth of the samples to measure accuracy")
    specs = input_specs(model)
    raw_spec = read_spec(preprocess)
    pre, layout = None, None
    if source is None:
        if preprocess is not None:
            raise CalibrationError("a preprocess spec was given without calibration images",
                                   hint="pass a folder of images as the calibration source, or drop the spec")
        if synthetic_samples < 2:
            raise CalibrationError(f"synthetic_samples is {synthetic_samples}; at least 2 are needed",
                                   hint="one to calibrate, one held out")
        synthetic_samples = _within(synthetic_samples, synthetic_bytes, specs)
        samples = make_inputs(model, synthetic_samples, seed=seed)
        warnings = [f"no calibration data: using {synthetic_samples} synthetic random samples; int8 ranges and "
                    f"accuracy figures are NOT representative of real inputs — pass --calibration with "
                    f"an .npz, a folder of .npy files, or a folder of images"]
        kind = "synthetic"
    else:
        path = Path(source)
        if not path.exists():
            raise CalibrationError(f"calibration data {path} does not exist", hint=SOURCES_HINT)
        if path.is_file():
            if path.suffix.lower() != ".npz":
                raise CalibrationError(f"calibration file {path} is not an .npz",
                                       hint=SOURCES_HINT + " (put .npy files or images in a folder)")
            kind, found_kind = "npz", None
        else:
            found = scan(path)
            found_kind = require_one_kind(found)
            kind = "images" if found_kind == "images" else "npy-folder"
        if preprocess is not None and kind != "images":
            raise CalibrationError(f"a preprocess spec was given but {path} holds no images",
                                   hint="preprocessing applies to image folders only; drop it for npy/npz data")
        if kind == "npz":
            samples, warnings = read_npz(path, specs)
        elif kind == "images":
            samples, warnings, used = read_images(path, found.images, specs, raw_spec)
            pre = used.as_dict()
        else:
            (samples, warnings), layout = read_npy_folder(found, found_kind, specs)
    calib, held, split_warnings = split(samples, holdout, seed, where=str(source or "synthetic data"))
    return CalibrationSet(calib, held, kind, None if source is None else str(source), warnings + split_warnings,
                          pre, float(holdout), seed, holdout_is_calib=holdout == 0, npy_layout=layout)


def split(samples: list, fraction: float, seed: int, *, where: str = "calibration data") -> tuple[list, list, list]:
    """(calib, holdout, warnings): a seeded shuffle; hold-out = max(1, round half up(n * fraction)) <= n - 1."""
    n = len(samples)
    if n < 2:
        raise CalibrationError(f"{where} holds {n} sample(s); at least 2 are needed "
                               f"(one to calibrate, one held out to measure accuracy)",
                               hint="add samples; " + LAYOUTS_HINT)
    warnings = []
    if n < FEW_SAMPLES:
        warnings.append(f"only {n} calibration samples: int8 ranges may be unreliable "
                        f"(use at least {FEW_SAMPLES}, ideally a few hundred representative inputs)")
    if fraction == 0:
        warnings.append("holdout is 0: accuracy is measured on the calibration samples themselves, "
                        "which overstates it")
        return list(samples), list(samples), warnings
    k = min(n - 1, max(1, math.floor(n * fraction + 0.5)))
    order = np.random.default_rng(seed).permutation(n)
    held = set(order[:k].tolist())
    calib = [s for i, s in enumerate(samples) if i not in held]
    return calib, [samples[i] for i in sorted(held)], warnings


MIN_SYNTHETIC = 16     # 20% of them (3) still verify every target on several different inputs


def _within(count: int, budget: int | None, specs) -> int:
    """``count`` synthetic samples, or as many as ``budget`` bytes hold (at least MIN_SYNTHETIC)."""
    per_sample = sum(int(np.prod(s.shape, dtype=np.int64)) * np.dtype(s.dtype).itemsize for s in specs.values())
    if budget is None or per_sample == 0:
        return count
    return max(min(count, MIN_SYNTHETIC), min(count, budget // per_sample))
