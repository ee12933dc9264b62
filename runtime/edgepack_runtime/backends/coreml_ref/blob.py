"""Reader for Core ML's weight blob file (``weights/weight.bin``), in pure Python.

Layout (little-endian), as written by coremltools' blob storage writer:

    file header, 64 bytes:   u32 count, u32 version (2), zero padding
    per blob, at the offset a program's ``blobFileValue`` names, 64 bytes of metadata:
        u32 sentinel 0xDEADBEEF, u32 storage dtype code, u64 size in bytes, u64 data offset,
        u64 padding bits of the last byte (sub-byte types), zero padding
    data at ``data offset``: packed elements; sub-byte types (int4, uint1..uint6) are packed
    least significant bit first, element i in bits [i*n, (i+1)*n) of the little-endian bit stream.

The element type and count come from the program's declared tensor type; the storage code is only
checked against it. coremltools' own reader (``libmilstoragepython``) is not needed.
"""
from __future__ import annotations

import struct

import numpy as np

from ...errors import BackendError

SENTINEL = 0xDEADBEEF
# storage dtype code -> (numpy dtype, bits per element)
STORAGE = {1: (np.float16, 16), 2: (np.float32, 32), 3: (np.uint8, 8), 4: (np.int8, 8), 6: (np.int16, 16),
           7: (np.uint16, 16), 8: (np.int8, 4), 9: (np.uint8, 1), 10: (np.uint8, 2), 11: (np.uint8, 4),
           12: (np.uint8, 3), 13: (np.uint8, 6), 14: (np.int32, 32), 15: (np.uint32, 32)}


class BlobFile:
    """One weight file's bytes; ``read(offset, count)`` decodes the blob whose metadata sits at offset."""

    def __init__(self, data: bytes, name: str = "weight.bin"):
        self.data, self.name = memoryview(data), name
        if len(data) < 64:
            raise BackendError(f"{name}: {len(data)} bytes is too short for a Core ML weight file",
                               hint="the .mlpackage is truncated; rebuild it")

    def read(self, offset: int, count: int) -> np.ndarray:
        """The ``count`` elements stored at ``offset`` (metadata position), as a flat numpy array."""
        if offset < 64 or offset + 64 > len(self.data):
            raise BackendError(f"{self.name}: blob offset {offset} is outside the file ({len(self.data)} bytes)")
        sentinel, code, size, start, _pad = struct.unpack_from("<IIQQQ", self.data, offset)
        if sentinel != SENTINEL or code not in STORAGE:
            raise BackendError(f"{self.name}: no blob at offset {offset} (sentinel {sentinel:#x}, dtype {code})",
                               hint="the weight file does not belong to this model; rebuild the package")
        if start + size > len(self.data):
            raise BackendError(f"{self.name}: blob at {offset} claims {size} bytes past the end of the file")
        dtype, bits = STORAGE[code]
        raw = np.frombuffer(self.data[start:start + size], dtype=np.uint8)
        if bits >= 8:
            out = raw.view(np.dtype(dtype).newbyteorder("<"))
        else:
            out = unpack_bits(raw, bits, count, signed=(code == 8))
        if out.size < count:
            raise BackendError(f"{self.name}: blob at {offset} holds {out.size} elements, the program wants {count}")
        return out[:count].astype(dtype, copy=False)


def unpack_bits(raw: np.ndarray, bits: int, count: int, *, signed: bool = False) -> np.ndarray:
    """``count`` n-bit elements packed LSB first into ``raw`` (uint8), as uint8 (int8 when signed)."""
    stream = np.unpackbits(raw, bitorder="little")[: count * bits].reshape(count, bits).astype(np.int16)
    values = stream @ (1 << np.arange(bits, dtype=np.int16))
    if signed:
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
        return values.astype(np.int8)
    return values.astype(np.uint8)
