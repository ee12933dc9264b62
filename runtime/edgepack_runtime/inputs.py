"""Input checking: turn what a caller passed to ``Runtime.run`` into arrays in manifest order."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .errors import InputError


def coerce_inputs(specs: list[dict], inputs) -> list[np.ndarray]:
    """Arrays in manifest order from a dict name->array, a sequence in manifest order, or one array.

    Python lists and scalars are converted to the expected dtype; numpy arrays of another dtype are
    an InputError, as are unknown or missing names and shapes that do not match the manifest.
    """
    names = [s["name"] for s in specs]
    if isinstance(inputs, Mapping):
        unknown = [k for k in inputs if k not in names]
        if unknown:
            raise InputError(f"unknown input name(s) {', '.join(map(repr, unknown))}; "
                             f"the model's inputs are: {', '.join(names)}")
        missing = [n for n in names if n not in inputs]
        if missing:
            raise InputError(f"missing input(s) {', '.join(map(repr, missing))}; "
                             f"the model's inputs are: {', '.join(names)}")
        values = [inputs[n] for n in names]
    elif _is_input_sequence(inputs, len(names)):
        if len(inputs) != len(names):
            raise InputError(f"got {len(inputs)} inputs but the model takes {len(names)} "
                             f"({', '.join(names)})", hint="pass them in this order or as a dict")
        values = list(inputs)
    elif len(names) == 1:
        values = [inputs]
    else:
        raise InputError(f"the model takes {len(names)} inputs ({', '.join(names)}) but got one value",
                         hint="pass a dict name->array or a sequence in this order")
    return [check_input(spec, value) for spec, value in zip(specs, values)]


def _is_input_sequence(value, count: int) -> bool:
    """A list/tuple is a sequence of inputs, unless it is the data of a single-input model."""
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        return False
    if count > 1:
        return True
    return len(value) == 1 and isinstance(value[0], np.ndarray)


def check_input(spec: dict, value) -> np.ndarray:
    """One input as an array of the manifest's dtype and shape, or an InputError saying what to fix."""
    name, dtype = spec["name"], np.dtype(spec["dtype"])
    if isinstance(value, np.ndarray):
        if value.dtype != dtype:
            raise InputError(f"input {name!r} has dtype {value.dtype} but the model expects {dtype}",
                             hint=f"convert it with .astype(np.{dtype.name})")
        array = value
    else:
        try:
            array = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise InputError(f"input {name!r} cannot be converted to a {dtype} array: {exc}",
                             hint=f"pass a numpy array of shape {spec['shape']}") from None
    _check_shape(name, spec["shape"], array.shape)
    return array


def _check_shape(name: str, expected: list[int], got: tuple[int, ...]) -> None:
    if len(expected) == len(got) and all(e in (-1, g) for e, g in zip(expected, got)):
        return
    hint = None
    if len(got) + 1 == len(expected) and expected[0] == 1:
        hint = "add the batch dimension with x[np.newaxis]"
    elif len(got) == len(expected) and sorted(got) == sorted(d for d in expected if d != -1):
        hint = "the axes look permuted; check the layout (the model expects the manifest's layout)"
    raise InputError(f"input {name!r} expects shape {list(expected)} (rank {len(expected)}) but got "
                     f"shape {list(got)} (rank {len(got)})", hint=hint)

