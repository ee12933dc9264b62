"""Array encoding of the agent's local HTTP API.

An array is ``{"dtype": "float32", "shape": [1, 3], "data": "<base64 of C-order little-endian bytes>"}``;
requests may also give plain nested lists (``{"data": [[...]]}`` or just ``[[...]]``), cast to the model's
dtype.
"""
from __future__ import annotations

import base64

import numpy as np

from .errors import InputError
from .payload import MAX_DEPTH


def encode(array: np.ndarray) -> dict:
    a = np.asarray(array)
    return {"dtype": a.dtype.name, "shape": list(a.shape),
            "data": base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode()}


def decode(name: str, value, expected_dtype: str) -> np.ndarray:
    if isinstance(value, dict) and isinstance(value.get("data"), str):
        _check(name, value)
        try:
            dtype = np.dtype(value["dtype"]).newbyteorder("<")
            raw = base64.b64decode(value["data"], validate=True)
            return np.frombuffer(raw, dtype=dtype).reshape(value["shape"]).astype(dtype.newbyteorder("="))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"input {name!r}: bad array encoding ({exc})",
                             hint='send {"dtype", "shape", "data": base64} or a nested list') from None
    data = value.get("data") if isinstance(value, dict) else value
    try:
        return np.asarray(data, dtype=expected_dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"input {name!r}: not a numeric array ({exc})") from None


def _check(name: str, value) -> None:
    """A base64 array's shape is the one sent: non-negative integers whose product matches the data."""
    shape, data = value.get("shape"), value["data"]
    ints = isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
    if not ints or len(shape) > MAX_DEPTH:
        raise InputError(f"input {name!r}: bad array encoding, shape must be a list of at most {MAX_DEPTH} "
                         f"integers, not {str(shape)[:40]}")
    if any(d < 0 for d in shape):
        raise InputError(f"input {name!r}: bad array encoding, shape {shape} has a negative dimension; send "
                         "the array's own shape (-1 is for the model's dynamic dimensions, not for data)")
    try:
        itemsize = np.dtype(value.get("dtype")).itemsize if isinstance(value.get("dtype"), str) else None
    except TypeError:
        itemsize = None
    if not itemsize:
        raise InputError(f"input {name!r}: bad array encoding, dtype must name a numeric dtype such as "
                         f"\"float32\", not {str(value.get('dtype'))[:40]}")
    if len(data) % 4:
        raise InputError(f"input {name!r}: bad array encoding, the base64 data is {len(data)} characters, "
                         "not a multiple of 4")
    size, need = len(data) // 4 * 3 - data[-2:].count("="), int(np.prod(shape, dtype=np.int64)) * itemsize
    if size != need:
        raise InputError(f"input {name!r}: bad array encoding, shape {shape} of {value['dtype']} needs {need} "
                         f"bytes but the base64 data holds {size} bytes")
