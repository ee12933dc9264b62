"""Keep int8 graphs on XNNPACK's integer path: rewrites around the full-integer pass (``full_integer.py``).

What they remove was measured per op in LiteRT (``benchmarks/bench_int8_ops.py``, its ``MEASURED`` table)
and on real models (``benchmarks/bench_int8_speed.py``); ``partitions.py`` counts what is left.

Before quantization (float IR, calibrated ranges), ``before``:

* exact rewrites into ops XNNPACK runs in int8 (``rewrites.py``): DIV by a constant as MUL (then scalar
  MULs merged and folded into the weights of the convolutions reading them, or of the convolutions they
  reach through MEAN / PAD / pooling / a MUL with another activation), SPLIT_V into equal parts as
  SPLIT, MAXIMUM(x, a*x)
  as LEAKY_RELU, channel-shuffle GATHERs as RESHAPE / TRANSPOSE / RESHAPE, a TRANSPOSE_CONV whose kernel
  equals its stride as a 1x1 CONV_2D and DEPTH_TO_SPACE, a VALID average pool as a depthwise convolution,
  a max pool's -inf padding as the input's calibrated minimum;
* shared concatenation parameters: an input of CONCATENATION / PACK whose producer (through ops that keep
  their input's parameters) has a range close to the concatenation's (width ratio at most
  ``SHARE_RATIO``), or that nothing else reads, takes the concatenation's range, so it is produced
  directly in the output's parameters instead of being requantized by a QUANTIZE before the join.

After quantization (int8 IR), ``after`` (``clamps.py``): clamps that are pure saturation in int8 become
requantizing QUANTIZE ops or disappear, and constant operands of ADD / SUB get scales XNNPACK accepts.

``disabled()`` turns both off (benchmarks compare with and without).
"""
from __future__ import annotations

import contextlib

import numpy as np

from ..ir import Graph
from . import clamps, rewrites

ENABLED = True
SHARE_RATIO = 2.0        # a shared concat range may be at most this much wider than the producer's own
JOINS = ("CONCATENATION", "PACK")
# ops whose output takes its own calibrated range in the int8 pass (so a range set here is used)
_FREE_OUTPUT = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "ADD", "SUB", "MUL",
                "MEAN", "SUM", "SQUARED_DIFFERENCE", "HARD_SWISH", "LEAKY_RELU", "RELU", "RELU6", "PRELU",
                "GELU", "ELU", "ABS", "BATCH_MATMUL", "CONCATENATION", "PACK"}


@contextlib.contextmanager
def disabled():
    """Build int8 without these rewrites (for comparisons)."""
    global ENABLED
    old, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = old


def before(graph: Graph, ranges: dict, share: bool = True) -> tuple[dict, dict]:
    """Rewrite the float IR for int8 and return (ranges to quantize with, counts). ``share=False`` leaves
    the ranges alone (a quantized model's own parameters)."""
    if not ENABLED:
        return ranges, {}
    ranges = dict(ranges)
    # a quantized model's weights stay on its own grids: no factor is folded into them (``share=False``)
    counts = {"div_as_mul": rewrites.div_as_mul(graph), "scalar_muls": rewrites.scalar_muls(graph) if share else 0,
              "sunk_muls": rewrites.sink_scalar_muls(graph, ranges) if share else 0,
              "leaky_max": rewrites.leaky_max(graph), "even_splits": rewrites.even_splits(graph),
              "shuffles": rewrites.gathers_as_transposes(graph, ranges),
              "deconvs": rewrites.deconv_as_depth_to_space(graph, ranges),
              "avg_pools": rewrites.avg_pool_as_depthwise(graph, ranges),
              "max_pool_pads": rewrites.finite_max_pool_padding(graph, ranges)}
    if share:
        ranges, counts["shared_join_inputs"] = shared_join_ranges(graph, ranges)
    return ranges, counts


def after(graph: Graph, record: dict, counts: dict) -> None:
    """Rewrite the quantized IR (``clamps.py``) and bring the quantization ``record`` up to date."""
    if not ENABLED:
        return
    counts = {**counts, **clamps.simplify(graph)}
    live = {o for op in graph.ops for o in op.outputs}
    floats = [n for n in record.get("float_ops", []) if n in live]
    kept = set(floats)
    record.update(float_ops=floats, float_opcodes=sorted({op.opcode for op in graph.ops if op.outputs[0] in kept}),
                  int8_ops=sum(1 for op in graph.ops if op.opcode not in ("QUANTIZE", "DEQUANTIZE")
                                and op.outputs[0] not in kept),
                  quantize_ops=graph.count("QUANTIZE"), dequantize_ops=graph.count("DEQUANTIZE"), speed=counts)


def _root(graph: Graph, name: str, prod, users) -> tuple[str, bool]:
    """The tensor whose parameters ``name`` inherits (through SAME ops), and whether the path is private."""
    from .full_integer import SAME
    private = True
    for _ in range(16):
        private &= len(users.get(name, [])) == 1 and name not in graph.outputs
        p = prod.get(name)
        acts = [n for n in p.inputs if n is not None and graph.tensors[n].data is None] if p is not None else []
        if p is None or p.opcode not in SAME or len(acts) != 1:
            break
        name = acts[0]
    return name, private


def shared_join_ranges(graph: Graph, ranges: dict) -> tuple[dict, int]:
    """Give concatenation inputs the join's range where that costs little (see the module docstring)."""
    out = dict(ranges)
    prod, users = graph.producers(), graph.consumers()
    claimed: dict[str, str] = {}
    shared = 0
    for op in reversed(graph.ops):        # outer joins first: an inner join's output may take their range
        if op.opcode not in JOINS or op.outputs[0] not in out:
            continue
        lo, hi = min(out[op.outputs[0]][0], 0.0), max(out[op.outputs[0]][1], 0.0)
        for n in op.inputs:
            if n is None or graph.tensors[n].data is not None or n not in ranges:
                continue
            root, private = _root(graph, n, prod, users)
            p = prod.get(root)
            if p is None or p.opcode not in _FREE_OUTPUT or root not in ranges or root in graph.outputs:
                continue
            r_lo, r_hi = min(ranges[root][0], 0.0), max(ranges[root][1], 0.0)
            close = (hi - lo) <= SHARE_RATIO * max(r_hi - r_lo, 1e-12)
            if claimed.get(root, op.outputs[0]) != op.outputs[0] or not (private or close):
                continue
            c_lo, c_hi = clamps.CLAMPS.get(p.opcode, (-np.inf, np.inf))
            if lo < c_lo or hi > c_hi:
                continue        # a clamp keeps its own range: int8 saturation then does the clamp (clamps.py)
            if r_lo < lo - 1e-6 * (hi - lo) or r_hi > hi + 1e-6 * (hi - lo):
                continue        # the join's range must cover the producer's (it does, unless ranges were clipped)
            claimed[root] = op.outputs[0]
            out[root] = (lo, hi)
            shared += 1
    return out, shared
