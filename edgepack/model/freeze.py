"""``--input-value NAME=VALUE``: freeze a model input to a constant before folding.

A frozen input becomes an initializer of the input's own dtype, so constant folding can resolve
whatever depends on it (an ``If`` on a sample rate, a mode flag, a fixed length) and it leaves the
model's interface. What was frozen is recorded in the model's ``metadata_props`` (key
``FROZEN_KEY``, JSON) so the build can list it in the manifest.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, ValueInfoProto, numpy_helper

from edgepack.errors import ModelError
from edgepack.model.graphutil import short_shape, tensor_shape

FROZEN_KEY = "edgepack.frozen_inputs"
MAX_RECORDED = 64               # values listed in the manifest; larger ones are recorded by hash only
_FORMAT = "write NAME=VALUE with a number or a comma list, e.g. sr=16000 or scale=0.5,0.5,0.5"
_INT = re.compile(r"[+-]?[0-9]+")
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def parse_input_value(text: str) -> tuple[str, list[str]]:
    """Parse ``NAME=V1,V2,...`` (split on the last '='); values stay text until the input's dtype is known."""
    name, sep, values = text.strip().rpartition("=")
    name = name.strip()
    if not sep or not name:
        raise ModelError(f"input value '{text}' has no input name before '='", hint=_FORMAT)
    parts = [p.strip() for p in values.split(",")]
    if not values.strip() or any(not p for p in parts):
        raise ModelError(f"input value '{text}' has an empty value", hint=_FORMAT)
    return name, parts


def parse_input_values(texts: list[str]) -> dict[str, list[str]]:
    """Repeated ``--input-value`` options -> {name: value texts}; ModelError on a bad or repeated one."""
    out: dict[str, list[str]] = {}
    for text in texts:
        name, parts = parse_input_value(text)
        if name in out:
            raise ModelError(f"--input-value given twice for '{name}'", hint="give each input once")
        out[name] = parts
    return out


def freeze_inputs(model: ModelProto, values: dict[str, list], path: Path) -> list[dict]:
    """Turn each named input into an initializer holding ``values[name]``; returns what was frozen.

    The dtype is the input's own. A single value fills the input's whole (static) shape; otherwise
    the count must match it (one dynamic dim takes what is left). Runs after ``--input-shape``.
    """
    inputs = {vi.name: vi for vi in model.graph.input}
    frozen = []
    for name, texts in values.items():
        if name not in inputs:
            raise ModelError(f"{path} has no input named '{name}'; its inputs are: "
                             + ", ".join(f"'{n}'" for n in inputs), hint="use one of these names in --input-value")
        array = _array(inputs[name], [str(t) for t in texts], path)
        model.graph.initializer.append(numpy_helper.from_array(array, name))
        model.graph.input.remove(inputs[name])
        frozen.append(_record(name, array))
    if frozen:
        _remember(model, frozen)
    return frozen


def frozen_inputs(model: ModelProto) -> list[dict]:
    """What ``freeze_inputs`` froze in ``model`` (name, dtype, shape, value or sha256); [] when nothing."""
    for prop in model.metadata_props:
        if prop.key == FROZEN_KEY:
            return json.loads(prop.value)
    return []


def _remember(model: ModelProto, frozen: list[dict]) -> None:
    done = frozen_inputs(model) + frozen
    for prop in list(model.metadata_props):
        if prop.key == FROZEN_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=FROZEN_KEY, value=json.dumps(done))


def _record(name: str, array: np.ndarray) -> dict:
    entry = {"name": name, "dtype": array.dtype.name, "shape": list(array.shape)}
    if array.size <= MAX_RECORDED:
        entry["value"] = array.reshape(-1).tolist()
    else:
        entry["sha256"] = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    return entry


def _array(vi: ValueInfoProto, texts: list[str], path: Path) -> np.ndarray:
    if not vi.type.HasField("tensor_type") or vi.type.tensor_type.elem_type == TensorProto.UNDEFINED:
        raise ModelError(f"{path}: input '{vi.name}' is not a typed tensor; it cannot be frozen",
                         hint="only tensor inputs can take --input-value")
    elem = vi.type.tensor_type.elem_type
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    except (KeyError, TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        raise ModelError(f"{path}: input '{vi.name}' has element type {TensorProto.DataType.Name(elem)}, "
                         "which --input-value cannot write", hint="freeze numeric or bool inputs only")
    flat = np.array([_scalar(vi.name, t, dtype) for t in texts], dtype=dtype)
    shape = _shape(vi, len(texts), path)
    if flat.size == 1 and int(np.prod(shape, dtype=np.int64)) != 1:
        return np.full(shape, flat[0], dtype=dtype)
    return flat.reshape(shape)


def _scalar(name: str, text: str, dtype: np.dtype):
    what = f"--input-value for input '{name}': '{text}'"
    if dtype.kind == "b":
        if text.lower() not in _BOOLS:
            raise ModelError(f"{what} is not a bool", hint="write true, false, 1 or 0")
        return _BOOLS[text.lower()]
    if dtype.kind in "iu":
        if not _INT.fullmatch(text):
            raise ModelError(f"{what} is not an integer, and the input is {dtype.name}", hint=_FORMAT)
        info = np.iinfo(dtype)
        if not info.min <= int(text) <= info.max:
            raise ModelError(f"{what} is outside {dtype.name} ({info.min}..{info.max})", hint=_FORMAT)
        return int(text)
    try:
        return float(text)
    except ValueError:
        raise ModelError(f"{what} is not a number (the input is {dtype.name})", hint=_FORMAT) from None


def _shape(vi: ValueInfoProto, count: int, path: Path) -> list[int]:
    dims = tensor_shape(vi)
    if dims is None:                                   # unknown rank: a scalar, or a vector of the values
        return [] if count == 1 else [count]
    fixed = [d for d in dims if isinstance(d, int)]
    dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int)]
    size = int(np.prod(fixed, dtype=np.int64))
    if not dynamic and (count == 1 or count == size):
        return list(dims)  # type: ignore[arg-type]
    if len(dynamic) == 1 and size > 0 and count % size == 0:
        out = list(dims)
        out[dynamic[0]] = count // size
        return out  # type: ignore[return-value]
    need = f"{size} value(s) (or one, to fill it)" if not dynamic else "its dynamic dims fixed first"
    raise ModelError(f"{path}: --input-value gives {count} value(s) for input '{vi.name}' of shape "
                     f"{short_shape(dims)}, which needs {need}",
                     hint=f"match the shape, or fix it with --input-shape {vi.name}=... before --input-value")
