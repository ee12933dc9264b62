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


@TFLITE.converts("Gemm", since=7, check=_check_float)
def gemm(node, ctx):
    """FULLY_CONNECTED (constant B; alpha/beta folded) or BATCH_MATMUL + ADD"""
    a = ctx.attrs(node)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    x = ctx.tensor(node.input[0])
    if a.get("transA", 0):
        x = ctx.transpose(x, [1, 0])
    out = node.output[0]
    m, n = ctx.shape(out)
    w = ctx.const(node.input[1])
    c = ctx.const(ctx.inp(node, 2))
    bias_vec = None
    if c is not None and beta != 0 and (c.size == n or c.size == 1):
        bias_vec = np.broadcast_to(c.reshape(-1) * beta, (n,))
    needs_add = c is None and ctx.inp(node, 2) is not None or (c is not None and bias_vec is None and beta != 0)
    y = ctx.new(f"{out}_mm", (m, n), np.float32) if needs_add else ctx.output(out)
    if w is not None:
        w = w.astype(np.float32) * alpha
        fully_connected(ctx, x, w if a.get("transB", 0) else w.T, bias_vec, y, False)
    else:
        mm = ctx.new(f"{out}_raw", (m, n), np.float32) if (alpha != 1.0 or bias_vec is not None) else y
        batch_matmul(ctx, x, ctx.tensor(node.input[1]), mm, adj_y=bool(a.get("transB", 0)))
        if alpha != 1.0:
            scaled = ctx.new(f"{out}_scaled", (m, n), np.float32) if bias_vec is not None else y
            ctx.emit("MUL", [mm, ctx.constant(np.asarray(alpha, np.float32))], [scaled], fb.MulOptionsT())
            mm = scaled
        if bias_vec is not None:
            ctx.emit("ADD", [mm, ctx.constant(bias_vec.astype(np.float32), "bias")], [y], fb.AddOptionsT())
    if needs_add:
        cc = ctx.tensor(node.input[2]) if c is None else ctx.constant(c.astype(np.float32), "c")
        if beta != 1.0:
            cs = ctx.new(f"{out}_c", ctx.graph.tensors[cc].shape, np.float32)
            ctx.emit("MUL", [cc, ctx.constant(np.asarray(beta, np.float32))], [cs], fb.MulOptionsT())
            cc = cs
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
