"""What the model expects of each input, and the checks every calibration source goes through."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from edgepack.errors import DynamicShapeError, EdgepackError
from edgepack.model.shapes import dynamic_input_dims

STACKED_HINT = "arrays are [samples, *input shape]: one leading sample axis before the model's input shape"


class CalibrationError(EdgepackError):
    """Calibration data missing, unreadable, or not matching the model's inputs."""

    exit_code = 3


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


def input_specs(model: onnx.ModelProto) -> dict[str, InputSpec]:
    """The model's real inputs (initializers excluded), in graph order; shapes must be static."""
    dims = dynamic_input_dims(model)
    if dims:
        raise DynamicShapeError(dims)
    weights = {t.name for t in model.graph.initializer}
    specs = {}
    for vi in model.graph.input:
        if vi.name in weights:
            continue
        t = vi.type.tensor_type
        specs[vi.name] = InputSpec(vi.name, tuple(d.dim_value for d in t.shape.dim),
                                   np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)))
    return specs


def describe_inputs(specs: dict[str, InputSpec]) -> str:
    return ", ".join(f"'{s.name}' {list(s.shape)} {s.dtype}" for s in specs.values())


def check_names(found, specs: dict[str, InputSpec], where: str) -> None:
    found = set(found)
    unknown = sorted(found - set(specs))
    missing = [n for n in specs if n not in found]
    if unknown or missing:
        raise CalibrationError(f"{where}: unknown input name(s) {unknown}, missing input(s) {missing}",
                               hint=f"the model's inputs are {describe_inputs(specs)}")


def check_stacked_shape(name: str, arr: np.ndarray, spec: InputSpec, where: str) -> None:
    if arr.ndim >= 1 and arr.shape[1:] == spec.shape:
        return
    hint = STACKED_HINT
    if arr.shape == spec.shape:
        hint += "; this looks like one sample without the sample axis (save it as arr[None])"
    got = f"{arr.shape[0]} sample(s) of {list(arr.shape[1:])}" if arr.ndim else "a scalar"
    raise CalibrationError(f"{where}: input '{name}' has shape {list(arr.shape)} ({got}), "
                           f"the model expects samples of {list(spec.shape)}", hint=hint)


def coerce_dtype(name: str, arr: np.ndarray, spec: InputSpec, where: str) -> tuple[np.ndarray, str | None]:
    """``arr`` in the model's dtype: float64 -> float32 is cast with a warning, any other mismatch is an error."""
    if arr.dtype == spec.dtype:
        return arr, None
    if arr.dtype == np.float64 and spec.dtype == np.float32:
        return arr.astype(np.float32), f"{where}: input '{name}' is float64, cast to the model's float32"
    raise CalibrationError(f"{where}: input '{name}' is {arr.dtype}, the model expects {spec.dtype}",
                           hint=f"convert it before saving, e.g. arr.astype(np.{spec.dtype})")


def validate(data: dict[str, np.ndarray], specs: dict[str, InputSpec], where: str,
             labels: list[str] | None = None) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """Check stacked arrays (input name -> [samples, *shape]) and split them into per-sample dicts.

    ``labels`` names the samples (file names) in error messages; default "sample <i>".
    """
    check_names(data, specs, where)
    warnings = []
    counts = {}
    for name, spec in specs.items():
        arr = data[name]
        check_stacked_shape(name, arr, spec, where)
        arr, warning = coerce_dtype(name, arr, spec, where)
        if warning:
            warnings.append(warning)
        data[name] = arr
        counts[name] = arr.shape[0]
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"'{k}': {v}" for k, v in counts.items())
        raise CalibrationError(f"{where}: inputs disagree on the number of samples ({listed})",
                               hint="every input needs one array per sample, in the same order")
    n = next(iter(counts.values()), 0)
    for name, arr in data.items():
        if arr.dtype.kind in "fc" and n:
            bad = np.flatnonzero(~np.isfinite(arr.reshape(n, -1)).all(axis=1))
            if bad.size:
                names = [labels[i] if labels else f"sample {i}" for i in bad[:5]]
                more = f" and {bad.size - 5} more" if bad.size > 5 else ""
                raise CalibrationError(f"{where}: input '{name}' contains NaN or Inf in {bad.size} of {n} "
                                       f"sample(s): {', '.join(names)}{more}",
                                       hint="drop or repair those samples (np.nan_to_num, or filter them out)")
    return [{k: data[k][i] for k in specs} for i in range(n)], warnings
