"""MIL values and types (``MIL_pb2``) as numpy: declared tensor types, immediate values, blob values."""
from __future__ import annotations

import numpy as np

from ...errors import BackendError
from .blob import unpack_bits

# MIL DataType enum value -> (name used by ``cast``, numpy dtype, bits of a sub-byte type or 0)
DTYPES = {1: ("bool", np.bool_, 0), 2: ("string", np.object_, 0), 10: ("fp16", np.float16, 0),
          11: ("fp32", np.float32, 0), 12: ("fp64", np.float64, 0), 21: ("int8", np.int8, 0),
          22: ("int16", np.int16, 0), 23: ("int32", np.int32, 0), 24: ("int64", np.int64, 0),
          25: ("int4", np.int8, 4), 31: ("uint8", np.uint8, 0), 32: ("uint16", np.uint16, 0),
          33: ("uint32", np.uint32, 0), 34: ("uint64", np.uint64, 0), 35: ("uint4", np.uint8, 4),
          36: ("uint2", np.uint8, 2), 37: ("uint1", np.uint8, 1), 38: ("uint6", np.uint8, 6),
          39: ("uint3", np.uint8, 3)}
BY_NAME = {name: np.dtype(dt) for name, dt, _ in DTYPES.values()}
BY_NAME.update({"float16": np.dtype(np.float16), "float32": np.dtype(np.float32), "float": np.dtype(np.float32),
                "int": np.dtype(np.int32), "double": np.dtype(np.float64)})


class TensorType:
    """A declared tensor type: numpy ``dtype``, MIL ``name``, ``shape`` (None for unknown dims)."""

    __slots__ = ("code", "name", "dtype", "bits", "shape")

    def __init__(self, code: int, shape: tuple | None):
        if code not in DTYPES:
            raise BackendError(f"MIL data type {code} is not supported by the reference executor")
        self.code, (self.name, dtype, self.bits), self.shape = code, DTYPES[code], shape
        self.dtype = np.dtype(dtype)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape is not None else -1

    def __repr__(self) -> str:
        return f"{self.name}{list(self.shape) if self.shape is not None else '[*]'}"


def tensor_type(value_type) -> TensorType | None:
    """The TensorType of a ``ValueType`` (None for lists, tuples, dictionaries, states)."""
    if value_type.WhichOneof("type") != "tensorType":
        return None
    t = value_type.tensorType
    dims = [d.constant.size if d.WhichOneof("dimension") == "constant" else None for d in t.dimensions]
    shape = None if any(d is None for d in dims) or len(dims) != t.rank else tuple(dims)
    return TensorType(t.dataType, shape)


def decode(value, blobs) -> object:
    """A ``Value`` (immediate or blob file) as numpy (a Python str for string scalars).

    ``blobs(file_name) -> BlobFile`` opens the weight files of the package."""
    kind = value.WhichOneof("value")
    if kind == "immediateValue":
        imm = value.immediateValue
        which = imm.WhichOneof("value")
        if which == "tensor":
            return _tensor(imm.tensor, tensor_type(value.type))
        if which in ("tuple", "list"):
            return [decode(v, blobs) for v in getattr(imm, which).values]
        raise BackendError(f"MIL immediate value of kind {which} is not supported by the reference executor")
    if kind == "blobFileValue":
        t = tensor_type(value.type)
        if t is None or t.shape is None:
            raise BackendError("a blob file value without a fully known tensor type")
        flat = blobs(value.blobFileValue.fileName).read(value.blobFileValue.offset, t.size)
        return flat.astype(t.dtype, copy=False).reshape(t.shape)
    raise BackendError(f"MIL value of kind {kind} is not supported by the reference executor")


def _tensor(tv, t: TensorType | None):
    field = tv.WhichOneof("value")
    if field == "strings":
        items = [s for s in tv.strings.values]
        return items[0] if t is None or t.shape == () else np.array(items, dtype=object)
    if field == "bytes":
        raw = np.frombuffer(tv.bytes.values, dtype=np.uint8)
        if t.bits:
            flat = unpack_bits(raw, t.bits, t.size, signed=t.name == "int4")
        else:
            flat = raw.view(t.dtype.newbyteorder("<"))
    else:
        flat = np.array(list(getattr(tv, field).values) if field else [])
    dtype = t.dtype if t is not None else flat.dtype
    shape = t.shape if t is not None and t.shape is not None else (() if flat.size == 1 else (flat.size,))
    return flat.astype(dtype).reshape(shape)
