"""Image preprocessing spec: a ``key=value;...`` string, a TOML file with the same keys, or a dict.

Keys (defaults from the model's image input):
    size    H,W the image is resized to; must equal the model's input height and width
    layout  NCHW | NHWC          default: NCHW if shape[1] is 1 or 3, else NHWC if shape[3] is 1 or 3
    mean    one value or one per channel (model channel order), subtracted after scaling   default 0
    std     one value or one per channel, divided by after subtracting the mean            default 1
    scale   pixel values (0..255) are divided by this first                                default 255
    order   RGB | BGR            channel order fed to the model (1-channel models use grayscale "L")
    resize  bilinear | nearest | center-crop (scale the shorter side, then crop the middle)  default bilinear
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .checks import CalibrationError, InputSpec

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

KEYS = ("size", "layout", "mean", "std", "scale", "order", "resize")
CHOICES = {"layout": ("NCHW", "NHWC"), "order": ("RGB", "BGR"), "resize": ("bilinear", "nearest", "center-crop")}
IMAGE_MODEL_HINT = "image folders need a model with one 4-D float input, NCHW or NHWC with 1 or 3 channels"


@dataclass(frozen=True)
class Preprocess:
    size: tuple[int, int]
    layout: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    scale: float
    order: str
    resize: str

    @property
    def channels(self) -> int:
        return len(self.mean)

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def read_spec(spec: str | Path | dict | None) -> dict:
    """The user's raw keys: a ``k=v;...`` string, a TOML path (top level or a [preprocess] table), a dict."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        raw = dict(spec)
    elif isinstance(spec, str) and "=" in spec:
        raw = {}
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            key, eq, value = part.partition("=")
            if not eq:
                raise CalibrationError(f"preprocess spec part '{part}' is not key=value",
                                       hint="write e.g. 'size=224,224;mean=0.485,0.456,0.406'")
            raw[key.strip()] = value.strip()
    else:
        raw = _read_toml(Path(spec))
    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        raise CalibrationError(f"unknown preprocess key(s) {unknown}", hint=f"the keys are {', '.join(KEYS)}")
    return raw


def _read_toml(path: Path) -> dict:
    if tomllib is None:
        raise CalibrationError(f"reading preprocess file {path} needs Python 3.11+ (tomllib)",
                               hint="pass the spec inline, e.g. 'mean=0.5;std=0.5'")
    if not path.is_file():
        raise CalibrationError(f"preprocess file {path} does not exist",
                               hint="pass a TOML file, or an inline spec such as 'mean=0.5;std=0.5'")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"preprocess file {path} is not valid TOML ({exc})",
                               hint="see docs/calibration.md for an example") from exc
    return raw["preprocess"] if set(raw) == {"preprocess"} and isinstance(raw["preprocess"], dict) else raw


def resolve(raw: dict, spec: InputSpec) -> Preprocess:
    """The full spec for image input ``spec``: the user's keys checked, the rest inferred from its shape."""
    shape = spec.shape
    if len(shape) != 4 or spec.dtype.kind != "f":
        raise CalibrationError(f"images given for a non-image model: input '{spec.name}' is "
                               f"{list(shape)} {spec.dtype}", hint=IMAGE_MODEL_HINT + "; pass .npy or .npz data")
    layout = _choice(raw, "layout") if "layout" in raw else _infer_layout(spec)
    batch, (c, h, w) = shape[0], (shape[1:] if layout == "NCHW" else (shape[3], shape[1], shape[2]))
    if c not in (1, 3) or batch != 1:
        raise CalibrationError(f"images given for a model whose input '{spec.name}' is {list(shape)}: as "
                               f"{layout} that is batch {batch} and {c} channel(s)",
                               hint=IMAGE_MODEL_HINT + " and batch 1")
    size = _ints(raw["size"], "size") if "size" in raw else (h, w)
    if size != (h, w):
        raise CalibrationError(f"preprocess size {list(size)} differs from input '{spec.name}' size {[h, w]} "
                               f"({layout} {list(shape)})", hint=f"use size={h},{w} or leave size out")
    mean = _floats(raw.get("mean", 0.0), "mean", c)
    std = _floats(raw.get("std", 1.0), "std", c)
    if 0.0 in std:
        raise CalibrationError(f"preprocess key 'std' has a zero: {list(std)}", hint="std values must be non-zero")
    scale = _floats(raw.get("scale", 255.0), "scale", 1)[0]
    if scale <= 0:
        raise CalibrationError(f"preprocess key 'scale' must be positive, got {scale}",
                               hint="use 255 for inputs in [0, 1], 1 for inputs in [0, 255]")
    order = _choice(raw, "order") if "order" in raw else "RGB"
    return Preprocess((h, w), layout, mean, std, scale, "L" if c == 1 else order, _choice(raw, "resize"))


def _infer_layout(spec: InputSpec) -> str:
    if spec.shape[1] in (1, 3):
        return "NCHW"
    if spec.shape[3] in (1, 3):
        return "NHWC"
    raise CalibrationError(f"images given for a model whose input '{spec.name}' is {list(spec.shape)}: "
                           f"neither dim 1 nor dim 3 is 1 or 3 channels", hint=IMAGE_MODEL_HINT)


def _choice(raw: dict, key: str) -> str:
    value = str(raw.get(key, CHOICES[key][0]))
    for choice in CHOICES[key]:
        if value.strip().lower() == choice.lower():
            return choice
    raise CalibrationError(f"preprocess key '{key}' has value '{value}'",
                           hint=f"accepted values: {', '.join(CHOICES[key])}")


def _items(value) -> list:
    """A spec value as a list: "1,2" (inline), [1, 2] (TOML) or a single value."""
    return value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]


def _ints(value, key: str) -> tuple[int, int]:
    try:
        dims = [int(str(v).strip()) for v in _items(value)]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims *= 2
    if len(dims) != 2 or min(dims) <= 0:
        raise CalibrationError(f"preprocess key '{key}' has value {value!r}",
                               hint="accepted values: H,W (two positive integers, e.g. 224,224) or one for a square")
    return dims[0], dims[1]


def _floats(value, key: str, n: int) -> tuple[float, ...]:
    try:
        out = [float(str(v).strip()) for v in _items(value)]
    except ValueError:
        out = []
    if len(out) == 1:
        out *= n
    if len(out) != n or not all(map(math.isfinite, out)):
        want = "one number" if n == 1 else f"one number or {n} comma-separated numbers (one per channel)"
        raise CalibrationError(f"preprocess key '{key}' has value {value!r}", hint=f"accepted values: {want}")
    return tuple(out)
