"""Shape and layout ops: reshape, transpose, squeeze/expand_dims, concat/split/stack, slicing, pad, tile."""
from __future__ import annotations

import numpy as np

from ..registry import op
from ._util import axes_of, axis_of, ints, ival


@op("reshape")
def reshape(x, shape):
    dims = ints(shape)
    if len(dims) == x.ndim:   # 0 keeps the input's dimension (only when the ranks agree)
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return np.reshape(x, dims)


@op("transpose")
def transpose(x, perm):
    return np.transpose(x, ints(perm))


@op("squeeze")
def squeeze(x, axes=None):
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=axes_of(axes, x.ndim))


@op("expand_dims")
def expand_dims(x, axes):
    rank = x.ndim + len(ints(axes))
    return np.expand_dims(x, axes_of(axes, rank))


@op("flatten2d")
def flatten2d(x, axis=1):
    a = axis_of(axis, x.ndim)
    return x.reshape(int(np.prod(x.shape[:a])), -1)


@op("concat", variadic=("values",))
def concat(values, axis, interleave=False):
    a = axis_of(axis, values[0].ndim)
    if not bool(interleave):
        return np.concatenate(values, axis=a)
    stacked = np.stack(values, axis=a + 1)    # interleave: slices taken one from each input in turn
    shape = list(values[0].shape)
    shape[a] *= len(values)
    return stacked.reshape(shape)


@op("stack", variadic=("values",))
def stack(values, axis):
    return np.stack(values, axis=axis_of(axis, values[0].ndim + 1))


@op("split")
def split(x, num_splits=None, split_sizes=None, axis=0):
    a = axis_of(axis, x.ndim)
    if split_sizes is not None:
        return tuple(np.split(x, np.cumsum(ints(split_sizes))[:-1], axis=a))
    return tuple(np.split(x, ival(num_splits), axis=a))


@op("slice_by_index")
def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    r = x.ndim
    b, e = ints(begin), ints(end)
    s = ints(stride) if stride is not None else [1] * r
    bm = [bool(v) for v in np.asarray(begin_mask).reshape(-1)] if begin_mask is not None else [False] * r
    em = [bool(v) for v in np.asarray(end_mask).reshape(-1)] if end_mask is not None else [False] * r
    sq = [bool(v) for v in np.asarray(squeeze_mask).reshape(-1)] if squeeze_mask is not None else [False] * r
    index = []
    for i in range(r):
        if sq[i]:
            index.append(b[i])
        else:
            index.append(slice(None if bm[i] else b[i], None if em[i] else e[i], s[i]))
    return np.asarray(x[tuple(index)])


@op("slice_by_size")
def slice_by_size(x, begin, size):
    index = []
    for i, (b, n) in enumerate(zip(ints(begin), ints(size))):
        b = b + x.shape[i] if b < 0 else b
        index.append(slice(b, None if n == -1 else b + n))
    return x[tuple(index)]


@op("pad")
def pad(x, pad, mode="constant", constant_val=0.0):
    p = ints(pad)
    n = len(p) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(p[2 * i], p[2 * i + 1]) for i in range(n)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=np.asarray(constant_val).reshape(()))
    if mode in ("reflect", "replicate"):
        return np.pad(x, widths, mode={"reflect": "reflect", "replicate": "edge"}[mode])
    raise ValueError(f"unknown pad mode {mode!r}")


@op("tile")
def tile(x, reps):
    return np.tile(x, ints(reps))


@op("reverse")
def reverse(x, axes=None):
    return np.flip(x, axis=axes_of(axes, x.ndim))


@op("depth_to_space")
def depth_to_space(x, block_size):
    """[N, C*b*b, H, W] -> [N, C, H*b, W*b], channels read block-row, block-column, channel (DCR, as TF)."""
    b = ival(block_size)
    n, c, h, w = x.shape
    y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


@op("space_to_depth")
def space_to_depth(x, block_size):
    """Inverse of depth_to_space."""
    b = ival(block_size)
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


@op("pixel_shuffle")
def pixel_shuffle(x, upscale_factor):
    """[N, C*f*f, H, W] -> [N, C, H*f, W*f], channel-major (CRD, as PyTorch's PixelShuffle)."""
    f = ival(upscale_factor)
    n, c, h, w = x.shape
    y = x.reshape(n, c // (f * f), f, f, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (f * f), h * f, w * f)


@op("shape")
def shape(x):
    return np.array(x.shape, dtype=np.int32)


@op("identity")
def identity(x):
    return x
