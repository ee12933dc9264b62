"""Request bodies of ``POST /v1/infer`` decoded into input arrays, each form with its memory cost known first.

* ``application/x-npy``: one array (a single-input model), used in place (no copy);
* ``application/x-npz``: named arrays (``np.savez``, compressed or not); members are inflated only after
  their declared sizes are charged, and never past them;
* JSON (any other type): ``{"inputs": {name: array}}`` where an array is ``{"dtype", "shape", "data":
  base64}`` (see ``wire.py``) or nested lists. Bracket nesting is bounded before ``json.loads`` with the
  MQTT payload's check (``payload.nesting_depth``).

``extra_cost(body, media)`` is what decoding may allocate beyond the body; the server charges it to its byte
budget before ``decode_body`` runs.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from . import wire
from .errors import InputError
from .payload import MAX_DEPTH, nesting_depth

NPY, NPZ = "application/x-npy", "application/x-npz"
PER_NUMBER = 40          # bytes a number of a nested JSON list costs once decoded (float object + list slot + array)
HINT = f"send the array as {NPY}, {NPZ} or base64 JSON"


def extra_cost(body: bytes, media: str) -> int:
    """Bytes decoding ``body`` may allocate beyond itself (an upper bound for JSON, declared sizes for npz)."""
    if media == NPY:
        return 0
    if media == NPZ:
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as z:
                return sum(i.file_size for i in z.infolist())
        except (zipfile.BadZipFile, ValueError, EOFError) as exc:
            raise InputError(f"body is not an npz archive ({exc})", hint="write it with np.savez") from None
    return 3 * len(body) + PER_NUMBER * (body.count(b",") + body.count(b"["))


def decode_body(body: bytearray, media: str, specs: list[dict]) -> dict:
    """name -> array (or nested list, cast by the runtime) for the model's input ``specs``; InputError if bad."""
    names = [s["name"] for s in specs]
    if media == NPY:
        if len(names) != 1:
            raise InputError(f"an {NPY} body is one array but the model takes {len(names)} inputs "
                             f"({', '.join(names)})", hint=f"send them by name as {NPZ}")
        return {names[0]: _npy(memoryview(body), "body")}
    if media == NPZ:
        return _check_names(_npz(body), names)
    return _json(body, specs)


def _check_names(inputs: dict, names: list[str]) -> dict:
    unknown = [k for k in inputs if k not in names]
    if unknown:
        raise InputError(f"unknown input name(s) {', '.join(map(repr, unknown))}; "
                         f"the model's inputs are: {', '.join(names)}")
    return inputs


def _npy(buf: memoryview, what: str) -> np.ndarray:
    fp = io.BytesIO(buf)
    try:
        version = np.lib.format.read_magic(fp)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(fp, max_header_size=10_000)
    except (ValueError, SyntaxError, TypeError, EOFError) as exc:
        raise InputError(f"{what} is not an npy array ({exc})", hint="write it with np.save") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biufc":
        raise InputError(f"{what}: dtype {dtype} is not a numeric dtype")
    count = int(np.prod(shape, dtype=np.int64))
    if count * dtype.itemsize != len(buf) - fp.tell():
        raise InputError(f"{what} is not an npy array: shape {list(shape)} of {dtype} needs "
                         f"{count * dtype.itemsize} bytes, the data has {len(buf) - fp.tell()}")
    array = np.frombuffer(buf, dtype, count, fp.tell()).reshape(shape, order="F" if fortran else "C")
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def _npz(body: bytearray) -> dict:
    out = {}
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    raise InputError(f"npz member {info.filename[:80]!r} is not an .npy file")
                with z.open(info) as member:
                    data = member.read(info.file_size + 1)
                if len(data) != info.file_size:
                    raise InputError(f"npz member {info.filename[:80]!r} is not the size it declares")
                out[info.filename[:-4]] = _npy(memoryview(data), f"npz member {info.filename[:80]!r}")
    except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, OSError, ValueError) as exc:
        raise InputError(f"body is not a readable npz archive ({exc})", hint="write it with np.savez") from None
    return out


def _json(body: bytearray, specs: list[dict]) -> dict:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"body is not UTF-8 JSON ({exc.reason} at byte {exc.start})") from None
    if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text) > MAX_DEPTH:   # before json.loads
        raise InputError(f"the JSON body nests deeper than {MAX_DEPTH} levels", hint=HINT)
    try:
        doc = json.loads(text or "null")
    except (ValueError, RecursionError) as exc:
        raise InputError(f"body is not JSON: {exc}") from None
    del text
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), dict):
        raise InputError('the body must be a JSON object {"inputs": {name: array}}', hint=HINT)
    dtypes = {s["name"]: s["dtype"] for s in specs}
    inputs = _check_names(doc["inputs"], list(dtypes))
    return {k: wire.decode(k, v, dtypes[k]) for k, v in inputs.items()}
