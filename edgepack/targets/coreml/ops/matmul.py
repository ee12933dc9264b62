"""MatMul (1-D, 2-D, batched, broadcasting) and Gemm."""
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..registry import COREML


@COREML.converts("MatMul", since=1)
def matmul(node, ctx):
    """matmul (numpy semantics: batched and broadcasting; 1-D operands as a row / a column)"""
    x, y = ctx.x(node.input[0]), ctx.x(node.input[1])
    row, col = ctx.rank(node.input[0]) == 1, ctx.rank(node.input[1]) == 1
    if not (row or col):
        return ctx.set(ctx.out(), mb.matmul(x=x, y=y, name=ctx.out()))
    if row:
        x = mb.reshape(x=x, shape=np.array([1, -1], np.int32), name=ctx.name("row"))
    if col:
        y = mb.reshape(x=y, shape=np.array([-1, 1], np.int32), name=ctx.name("col"))
    z = mb.matmul(x=x, y=y, name=ctx.name("mm"))
    ctx.set(ctx.out(), mb.reshape(x=z, shape=np.array(ctx.shape(node.output[0]), np.int32), name=ctx.out()))


def _linear_bias(ctx, c_name, beta, n):
    """Gemm's C as linear's (N,) bias when it is constant and broadcasts along rows; else None."""
    if c_name is None:
        return np.zeros(n, np.float32)
    c = ctx.const(c_name)
    if c is None or c.size not in (1, n) or (c.ndim == 2 and c.shape[0] != 1):
        return None
    return (np.broadcast_to(c.reshape(-1), (n,)) * beta).astype(np.float32)


@COREML.converts("Gemm", since=1)
def gemm(node, ctx):
    """linear for constant B and row-broadcast C; matmul, mul(alpha), add(beta*C) otherwise"""
    a = ctx.attrs(node)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    ta, tb = bool(a.get("transA", 0)), bool(a.get("transB", 0))
    b, c_name = ctx.const(node.input[1]), ctx.inp(node, 2)
    n = ctx.shape(node.output[0])[1]
    bias = _linear_bias(ctx, c_name, beta, n) if b is not None and not ta else None
    if bias is not None:
        weight = (b if tb else b.T).astype(np.float32) * np.float32(alpha)
        return ctx.set(ctx.out(), mb.linear(x=ctx.x(node.input[0]), weight=weight, bias=bias, name=ctx.out()))
    last = c_name is None and alpha == 1.0
    y = mb.matmul(x=ctx.x(node.input[0]), y=ctx.x(node.input[1]), transpose_x=ta, transpose_y=tb,
                  name=ctx.out() if last else ctx.name("mm"))
    if alpha != 1.0:
        y = mb.mul(x=y, y=np.float32(alpha), name=ctx.out() if c_name is None else ctx.name("alpha"))
    if c_name is not None:
        c = ctx.const(c_name)
        c = (c * np.float32(beta)).astype(np.float32) if c is not None else \
            (ctx.x(c_name) if beta == 1.0 else mb.mul(x=ctx.x(c_name), y=np.float32(beta), name=ctx.name("beta")))
        y = mb.add(x=y, y=c, name=ctx.out())
    ctx.set(ctx.out(), y)
