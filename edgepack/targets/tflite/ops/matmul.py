"""Gemm and MatMul: FULLY_CONNECTED for constant 2-D weights, BATCH_MATMUL otherwise."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as fb

from ..registry import TFLITE
from .common import Act


def fully_connected(ctx, x: str, w_out_in: np.ndarray, bias, out: str, keep_dims: bool) -> None:
    opts = fb.FullyConnectedOptionsT()
    opts.fusedActivationFunction = Act.NONE
    opts.keepNumDims = keep_dims
    b = ctx.constant(np.asarray(bias, np.float32), "bias") if bias is not None else None
    ctx.emit("FULLY_CONNECTED", [x, ctx.constant(np.ascontiguousarray(w_out_in, np.float32), "weights"), b],
             [out], opts)


def batch_matmul(ctx, a: str, b: str, out: str, adj_x=False, adj_y=False) -> None:
    opts = fb.BatchMatMulOptionsT()
    opts.adjX, opts.adjY = adj_x, adj_y
    ctx.emit("BATCH_MATMUL", [a, b], [out], opts)


def _check_float(node, ctx):
    dt = ctx.dtype(node.input[0])
    return None if dt == np.float32 else f"{dt} matrix products are not supported (float32 only)"


def _mul_const(ctx, x: str, value: float, hint: str, out: str | None = None) -> str:
    out = out or ctx.new(hint, ctx.graph.tensors[x].shape, np.float32)
    ctx.emit("MUL", [x, ctx.constant(np.asarray(value, np.float32), "scale")], [out], fb.MulOptionsT())
    return out


def _runtime_b(ctx, x: str, b: str, trans_b: bool, alpha: float, bias, out: str) -> None:
    """BATCH_MATMUL, then MUL by alpha and ADD of the bias row where they are not the identity."""
    steps = [s for s, on in (("alpha", alpha != 1.0), ("bias", bias is not None)) if on]
    shape = ctx.graph.tensors[out].shape
    y = ctx.new(f"{out}_raw", shape, np.float32) if steps else out
    batch_matmul(ctx, x, b, y, adj_y=trans_b)
    if "alpha" in steps:
        y = _mul_const(ctx, y, alpha, f"{out}_scaled", out if steps[-1] == "alpha" else None)
    if "bias" in steps:
        ctx.emit("ADD", [y, ctx.constant(np.asarray(bias, np.float32), "bias")], [out], fb.AddOptionsT())


@TFLITE.converts("Gemm", since=1, check=_check_float)
def gemm(node, ctx):
    """FULLY_CONNECTED (constant B; alpha, beta, row-vector C folded) or BATCH_MATMUL; other C by ADD"""
    a = ctx.attrs(node)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    out = node.output[0]
    m, n = ctx.shape(out)
    x = ctx.tensor(node.input[0])
    if a.get("transA", 0):
        x = ctx.transpose(x, [1, 0])
    c_name = ctx.inp(node, 2) if beta != 0 else None
    c = ctx.const(c_name)
    row = c is not None and c.size in (1, n) and (c.ndim < 2 or c.shape[0] == 1)  # same for every row
    bias = np.broadcast_to(c.reshape(-1).astype(np.float32) * beta, (n,)) if row else None
    extra = c_name is not None and not row
    y = ctx.new(f"{out}_mm", (m, n), np.float32) if extra else ctx.output(out)
    w = ctx.const(node.input[1])
    if w is not None:
        w = w.astype(np.float32) * alpha
        fully_connected(ctx, x, w if a.get("transB", 0) else w.T, bias, y, False)
    else:
        _runtime_b(ctx, x, ctx.tensor(node.input[1]), bool(a.get("transB", 0)), alpha, bias, y)
    if extra:  # C varies along rows (or is computed at run time)
        if c is not None:
            cc = ctx.constant(c.astype(np.float32) * beta, "c")
        else:
            cc = ctx.tensor(c_name) if beta == 1.0 else _mul_const(ctx, ctx.tensor(c_name), beta, f"{out}_c")
        ctx.emit("ADD", [y, cc], [ctx.output(out)], fb.AddOptionsT())


@TFLITE.converts("MatMul", since=1, check=_check_float)
def matmul(node, ctx):
    """FULLY_CONNECTED (constant 2-D B, keep_num_dims) or BATCH_MATMUL (broadcasting; 1-D operands reshaped)"""
    out = node.output[0]
    sa, sb = ctx.shape(node.input[0]), ctx.shape(node.input[1])
    a, b = ctx.tensor(node.input[0]), ctx.tensor(node.input[1])
    w = ctx.const(node.input[1])
    if w is not None and w.ndim == 2 and len(sa) >= 2:
        fully_connected(ctx, a, w.T, None, ctx.output(out), keep_dims=len(sa) > 2)
        return
    if len(sa) == 1:
        a = ctx.reshape(a, (1, sa[0]))
    if len(sb) == 1:
        b = ctx.reshape(b, (sb[0], 1))
    oshape = ctx.shape(out)
    ra, rb = ctx.graph.tensors[a].shape, ctx.graph.tensors[b].shape
    full = tuple(np.broadcast_shapes(ra[:-2], rb[:-2])) + (ra[-2], rb[-1])
    if full == tuple(oshape):
        batch_matmul(ctx, a, b, ctx.output(out))
    else:
        tmp = ctx.new(f"{out}_mm", full, np.float32)
        batch_matmul(ctx, a, b, tmp)
        ctx.reshape(tmp, oshape, out=ctx.output(out))
