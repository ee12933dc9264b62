"""Compressed weights (constexpr_*), decompressed once when the program loads.

iOS16 forms: constexpr_affine_dequantize, constexpr_lut_to_dense (indices packed in uint8 with a
``shape``), constexpr_sparse_to_dense (bit mask in uint8 with a ``shape``), constexpr_cast. iOS18 forms,
told apart by their inputs: constexpr_blockwise_shift_scale, constexpr_lut_to_dense (typed sub-byte
indices, per-block LUTs, optional ``vector_axis``), constexpr_sparse_to_dense (uint1 mask).
"""
from __future__ import annotations

import numpy as np

from ..blob import unpack_bits
from ..registry import op
from ._util import axis_of, ints


def _per_axis(param, rank, axis):
    p = np.asarray(param, np.float32)
    if p.ndim == 0 or p.ndim == rank:
        return p
    shape = [1] * rank
    shape[axis] = -1
    return p.reshape(shape)


@op("constexpr_affine_dequantize")
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis=0):
    a = axis_of(axis, quantized_data.ndim)
    q = quantized_data.astype(np.float32)
    return (q - _per_axis(zero_point, q.ndim, a)) * _per_axis(scale, q.ndim, a)


@op("constexpr_cast")
def constexpr_cast(source_val, output_dtype="fp32"):
    return source_val


def _repeat_blocks(param, shape):
    for axis, (full, part) in enumerate(zip(shape, param.shape)):
        if part != full:
            param = np.repeat(param, full // part, axis=axis)
    return param


@op("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(data, scale, offset=None):
    d = data.astype(np.float32)
    if offset is not None:
        d = d - _repeat_blocks(np.asarray(offset, np.float32), d.shape)
    return d * _repeat_blocks(np.asarray(scale, np.float32), d.shape)


@op("constexpr_lut_to_dense")
def constexpr_lut_to_dense(indices, lut, shape=None, vector_axis=None):
    if shape is not None:   # iOS16: flat LUT of 2^n entries, indices packed n bits each in uint8
        dims = ints(shape)
        nbits = int(np.log2(lut.size))
        flat = unpack_bits(np.asarray(indices, np.uint8).reshape(-1), nbits, int(np.prod(dims)))
        return lut.reshape(-1)[flat.astype(np.int64)].reshape(dims)
    idx = np.asarray(indices).astype(np.int64)
    rank = idx.ndim
    blocks = [full // part for full, part in zip(idx.shape, lut.shape[:rank])]
    grids = np.meshgrid(*[np.arange(n) // b for n, b in zip(idx.shape, blocks)], indexing="ij")
    values = lut[tuple(grids) + (idx,)]                      # [*indices.shape, vector size]
    if vector_axis is None:
        return values[..., 0]
    va = axis_of(vector_axis, rank)
    values = np.moveaxis(values, -1, va + 1)
    out_shape = list(idx.shape)
    out_shape[va] *= lut.shape[-1]
    return values.reshape(out_shape)


@op("constexpr_sparse_to_dense")
def constexpr_sparse_to_dense(nonzero_data, mask, shape=None):
    if shape is not None:   # iOS16: bit mask packed LSB first in uint8
        dims = ints(shape)
        bits = np.unpackbits(np.asarray(mask, np.uint8).reshape(-1), bitorder="little")[:int(np.prod(dims))]
        out = np.zeros(int(np.prod(dims)), nonzero_data.dtype)
        out[bits != 0] = nonzero_data
        return out.reshape(dims)
    out = np.zeros(mask.shape, nonzero_data.dtype)
    out[np.asarray(mask) != 0] = nonzero_data
    return out


@op("constexpr_lut_to_sparse")
def constexpr_lut_to_sparse(indices_mask, indices_nonzero_data, lut, vector_axis=None):
    """iOS18 joint pruning + palettization: the LUT applied to the nonzero entries only -> (mask, values),
    which a constexpr_sparse_to_dense turns dense. Nonzero entries are in the mask's C order; each reads the
    LUT of its block (``lut``: [*blocks, palette size, vector size])."""
    mask = np.asarray(indices_mask)
    if lut.shape[-1] != 1:
        from ....errors import BackendError
        raise BackendError("constexpr_lut_to_sparse with vector palettes is not supported by the reference "
                           "executor", hint="use scalar palettes (the default) or run on macOS")
    where = np.nonzero(mask)
    blocks = tuple(pos // (full // part) for pos, full, part in zip(where, mask.shape, lut.shape[:mask.ndim]))
    idx = np.asarray(indices_nonzero_data).astype(np.int64).reshape(-1)
    return mask, lut[blocks + (idx, 0)]
