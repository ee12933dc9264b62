"""Calibration / verification data intake (minimal: an ``.npz`` of input name -> [samples, ...])."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from .errors import EdgepackError


class CalibrationError(EdgepackError):
    exit_code = 3


def load_npz(path: str | Path, model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
    """Per-sample input dicts from an npz whose arrays have a leading sample axis."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except Exception as exc:
        raise CalibrationError(f"calibration file {path} is not a readable .npz ({exc})") from exc
    inputs = {i.name: i for i in model.graph.input}
    unknown = sorted(set(data) - set(inputs))
    missing = sorted(set(inputs) - set(data))
    if unknown or missing:
        raise CalibrationError(f"calibration file {path}: unknown arrays {unknown}, missing inputs {missing}",
                               hint=f"the model's inputs are {sorted(inputs)}")
    counts = set()
    for name, arr in data.items():
        t = inputs[name].type.tensor_type
        want = tuple(d.dim_value for d in t.shape.dim)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type))
        if arr.shape[1:] != want:
            raise CalibrationError(f"calibration array '{name}' has sample shape {list(arr.shape[1:])}, "
                                   f"the model expects {list(want)}", hint="arrays are [samples, *input shape]")
        if arr.dtype != dtype:
            raise CalibrationError(f"calibration array '{name}' is {arr.dtype}, the model expects {dtype}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise CalibrationError(f"calibration array '{name}' contains NaN or Inf")
        counts.add(arr.shape[0])
    if len(counts) != 1 or 0 in counts:
        raise CalibrationError(f"calibration arrays disagree on (or lack) samples: counts {sorted(counts)}")
    n = counts.pop()
    return [{k: v[i] for k, v in data.items()} for i in range(n)]
