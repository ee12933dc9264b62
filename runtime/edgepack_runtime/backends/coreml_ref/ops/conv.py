"""conv and conv_transpose over 1-3 spatial dims, float32 accumulation."""
from __future__ import annotations

import itertools

import numpy as np

from ..registry import op
from ._util import ints, ival
from ._window import paddings, windows

LETTERS = "defhijklmpqrstuvwxyz"


def _geometry(x, weight, strides, dilations):
    n = x.ndim - 2
    kernel = list(weight.shape[2:])
    strides = ints(strides) if strides is not None else [1] * n
    dilations = ints(dilations) if dilations is not None else [1] * n
    return n, kernel, strides, dilations


@op("conv")
def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    n, kernel, strides, dilations = _geometry(x, weight, strides, dilations)
    g = ival(groups)
    pads = paddings(pad_type, pad, x.shape[2:], kernel, strides, dilations)
    win = windows(x.astype(np.float32), kernel, strides, dilations, pads)      # [N, C, *O, *K]
    batch, cin = x.shape[:2]
    win = win.reshape((batch, g, cin // g) + win.shape[2:])                    # [N, G, Cg, *O, *K]
    w = weight.astype(np.float32).reshape((g, weight.shape[0] // g) + weight.shape[1:])  # [G, Og, Cg, *K]
    o, k = LETTERS[:n], LETTERS[n:2 * n]
    y = np.einsum(f"agc{o}{k},gbc{k}->agb{o}", win, w, optimize=True)
    y = y.reshape((batch, weight.shape[0]) + y.shape[3:])
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * n)
    return y


@op("conv_transpose")
def conv_transpose(x, weight, bias=None, pad=None, output_shape=None, pad_type="valid", strides=None,
                   dilations=None, groups=1):
    """weight [C_in, C_out/groups, *K]; scatter-add of every kernel tap, then crop the padding."""
    n, kernel, strides, dilations = _geometry(x, weight, strides, dilations)
    g, (batch, cin), sizes = ival(groups), x.shape[:2], x.shape[2:]
    og = weight.shape[1]
    full = [(d - 1) * s + (k - 1) * dl + 1 for d, s, k, dl in zip(sizes, strides, kernel, dilations)]
    out = np.zeros((batch, g, og, *full), np.float32)
    xg = x.astype(np.float32).reshape((batch, g, cin // g) + sizes)
    wg = weight.astype(np.float32).reshape((g, cin // g, og) + tuple(kernel))
    sp = LETTERS[:n]
    for tap in itertools.product(*[range(k) for k in kernel]):
        contrib = np.einsum(f"agc{sp},gcb->agb{sp}", xg, wg[(slice(None),) * 3 + tap], optimize=True)
        region = tuple(slice(t * dl, t * dl + (d - 1) * s + 1, s)
                       for t, dl, d, s in zip(tap, dilations, sizes, strides))
        out[(slice(None),) * 3 + region] += contrib
    out = out.reshape((batch, g * og) + tuple(full))
    if output_shape is not None:
        want = ints(output_shape)[2:]
        begins = ints(pad)[0::2] if pad is not None and pad_type == "custom" else [0] * n
        if pad_type == "same":
            begins = [max(f - w, 0) // 2 for f, w in zip(full, want)]
    elif pad_type == "same":
        want = [d * s for d, s in zip(sizes, strides)]
        begins = [max(f - w, 0) // 2 for f, w in zip(full, want)]
    else:
        p = ints(pad) if pad is not None and pad_type == "custom" else [0] * (2 * n)
        begins = p[0::2]
        want = [f - p[2 * i] - p[2 * i + 1] for i, f in enumerate(full)]
    grow = [(0, max(b + w - f, 0)) for b, w, f in zip(begins, want, full)]
    out = np.pad(out, [(0, 0), (0, 0)] + grow)
    out = out[(slice(None), slice(None)) + tuple(slice(b, b + w) for b, w in zip(begins, want))]
    if bias is not None:
        out = out + bias.reshape((1, -1) + (1,) * n)
    return out
