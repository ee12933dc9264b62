"""Array encoding of the agent's local HTTP API.

An array is ``{"dtype": "float32", "shape": [1, 3], "data": "<base64 of C-order little-endian bytes>"}``;
requests may also give plain nested lists (``{"data": [[...]]}`` or just ``[[...]]``), cast to the model's
dtype.
"""
from __future__ import annotations

import base64

import numpy as np

from .errors import InputError


def encode(array: np.ndarray) -> dict:
    a = np.asarray(array)
    return {"dtype": a.dtype.name, "shape": list(a.shape),
            "data": base64.b64encode(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()).decode()}


def decode(name: str, value, expected_dtype: str) -> np.ndarray:
    if isinstance(value, dict) and isinstance(value.get("data"), str):
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
