"""Folders of images for a model with a single image input (Pillow decodes, ``Preprocess`` says how)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .checks import CalibrationError, InputSpec, describe_inputs, validate
from .preprocess import IMAGE_MODEL_HINT, Preprocess, resolve


def read_images(folder: Path, paths: list[Path], specs: dict[str, InputSpec],
                raw_spec: dict) -> tuple[list[dict[str, np.ndarray]], list[str], Preprocess]:
    """(samples, warnings, spec used): one sample per image, in the given (natural) order."""
    if len(specs) != 1:
        raise CalibrationError(f"images given for a model with {len(specs)} inputs ({describe_inputs(specs)})",
                               hint=IMAGE_MODEL_HINT + "; for several inputs use .npz or .npy data")
    (spec,) = specs.values()
    pre = resolve(raw_spec, spec)
    image_module = _pillow()
    arrays = [load_image(p, pre, image_module) for p in paths]
    data = {spec.name: np.stack(arrays).astype(spec.dtype)}
    samples, warnings = validate(data, specs, f"calibration folder {folder}", labels=[p.name for p in paths])
    return samples, warnings, pre


def load_image(path: Path, pre: Preprocess, image_module=None) -> np.ndarray:
    """One preprocessed sample, [1, C, H, W] or [1, H, W, C], as float64."""
    Image = image_module or _pillow()
    try:
        with Image.open(path) as img:
            img = _resize(img.convert("L" if pre.channels == 1 else "RGB"), pre, Image)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CalibrationError(f"cannot read image {path} ({exc})",
                               hint="remove it from the folder or re-save it as PNG or JPEG") from exc
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = x[..., None]
    if pre.order == "BGR":
        x = x[..., ::-1]
    x = (x / pre.scale - np.asarray(pre.mean)) / np.asarray(pre.std)
    if pre.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return x[None]


def _resize(img, pre: Preprocess, Image):
    h, w = pre.size
    if pre.resize == "nearest":
        return img.resize((w, h), Image.Resampling.NEAREST)
    if pre.resize == "bilinear":
        return img.resize((w, h), Image.Resampling.BILINEAR)
    # center-crop: scale so the image covers h x w, then cut the middle
    factor = max(h / img.height, w / img.width)
    nw, nh = max(w, round(img.width * factor)), max(h, round(img.height * factor))
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - w) // 2, (nh - h) // 2
    return img.crop((left, top, left + w, top + h))


def _pillow():
    try:
        from PIL import Image
    except ImportError as exc:
        raise CalibrationError("reading calibration images needs Pillow, which is not installed",
                               hint="pip install Pillow, or pass the data as .npy/.npz") from exc
    return Image
