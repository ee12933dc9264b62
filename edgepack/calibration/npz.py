"""``.npz`` intake: one array per input name, each [samples, *input shape]."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from .checks import CalibrationError, InputSpec, input_specs, validate


def read_npz(path: Path, specs: dict[str, InputSpec]) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """Per-sample input dicts and warnings from an ``.npz`` of input name -> [samples, *shape]."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise CalibrationError(f"calibration file {path} is not a readable .npz ({exc})",
                               hint="write it with np.savez(path, **{input_name: array})") from exc
    return validate(data, specs, f"calibration file {path}")


def load_npz(path: str | Path, model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
    """Per-sample input dicts from an npz whose arrays have a leading sample axis (at least one sample)."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist",
                               hint="pass the path of an .npz of input name -> [samples, *input shape]")
    samples, _ = read_npz(path, input_specs(model))
    if not samples:
        raise CalibrationError(f"calibration file {path} holds no samples",
                               hint="arrays are [samples, *input shape] with at least one sample")
    return samples
