"""What leaves the integer path of a built TFLite model, and how XNNPACK partitions it.

``report(data)`` loads the model in the real LiteRT interpreter twice: once as written (the op list) and once
with its default delegate, XNNPACK, applied. XNNPACK replaces each run of nodes it can take by one
``DELEGATE`` node appended to the node list; the replaced nodes stay listed with their own tensors. A
partition's members are found by walking back from the delegate node's outputs through producers until its
inputs (a partition is closed: every member reads a partition input, a constant, or another member). Nodes in
no partition run on TFLite's own kernels, and every border between the two costs a hand-over.

Counts (all over the first subgraph):

* ``requantize``: QUANTIZE int8 -> int8 (a tensor re-expressed in another scale: concatenation inputs,
  fixed-range ops), ``quantize``: QUANTIZE float -> int8, ``dequantize``: DEQUANTIZE.
* ``float_ops``: other ops computing in float (float output), by op type: what mixed precision or a missing
  int8 kernel left in float.
* ``partitions``: XNNPACK delegate nodes; ``delegated`` / ``ops``: nodes inside them / all nodes;
  ``not_delegated``: op types (with int8 or float in the name) running outside XNNPACK, with counts.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

QUANT_OPS = ("QUANTIZE", "DEQUANTIZE")


def _interpreter(data: bytes, delegate: bool, num_threads: int):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from edgepack_runtime.backends.quiet import XNNPACK_INFO, native_stderr_filtered
    kind = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with native_stderr_filtered(XNNPACK_INFO):
        interp = Interpreter(model_content=data, num_threads=num_threads, experimental_op_resolver_type=kind)
        interp.allocate_tensors()
    return interp


def _kind(dtypes) -> str:
    kinds = {np.dtype(d).name for d in dtypes}
    return next((k for k in ("float32", "float16", "int16", "int8", "uint8") if k in kinds), "other")


def partition_members(nodes: list[dict], n_ops: int) -> list[set[int]]:
    """Per delegate node of ``nodes`` (op details of a delegated interpreter), the indices of the original
    nodes (``< n_ops``) it replaced."""
    producer = {int(t): i for i in range(n_ops) for t in nodes[i]["outputs"] if t >= 0}
    parts = []
    for d in nodes[n_ops:]:
        borders = {int(t) for t in d["inputs"]}
        members: set[int] = set()
        stack = [int(t) for t in d["outputs"]]
        while stack:
            t = stack.pop()
            p = producer.get(t)
            if t in borders or p is None or p in members:
                continue
            members.add(p)
            stack.extend(int(x) for x in nodes[p]["inputs"] if x >= 0)
        parts.append(members)
    return parts


def report(data: bytes, *, num_threads: int = 1) -> dict:
    """Counts of what leaves the integer path in the .tflite ``data`` and of its XNNPACK partitions."""
    plain = _interpreter(data, False, num_threads)
    ops = plain._get_ops_details()
    n = len(ops)
    delegated = _interpreter(data, True, num_threads)._get_ops_details()
    extra = [d for d in delegated[n:]]
    parts = partition_members(delegated, n) if all(d["op_name"] == "DELEGATE" for d in extra) else []
    inside = set().union(*parts) if parts else set()
    requant = quant = dequant = 0
    floats: Counter = Counter()
    outside: Counter = Counter()
    for i, op in enumerate(ops):
        name = op["op_name"]
        src, dst = _kind(op["operand_types"][:1]), _kind(op["result_types"])
        if name == "QUANTIZE":
            requant += src in ("int8", "uint8", "int16")
            quant += src.startswith("float")
        elif name == "DEQUANTIZE":
            dequant += 1
        elif dst.startswith("float"):
            floats[name] += 1
        if i not in inside:
            outside[f"{name} ({dst})"] += 1
    return {"ops": n, "requantize": int(requant), "quantize": int(quant), "dequantize": dequant,
            "float_ops": dict(floats.most_common()), "partitions": len(parts), "delegated": len(inside),
            "not_delegated": dict(outside.most_common())}


def summary(rep: dict) -> str:
    """One line for reports: partitions, delegated share, requantizations and float islands."""
    out = sum(rep["not_delegated"].values())
    text = (f"{rep['partitions']} XNNPACK partition(s), {rep['delegated']}/{rep['ops']} ops delegated; "
            f"{rep['requantize']} requantize, {rep['quantize']} quantize, {rep['dequantize']} dequantize, "
            f"{sum(rep['float_ops'].values())} float ops")
    if out:
        text += "; outside XNNPACK: " + ", ".join(f"{k} x{v}" for k, v in list(rep["not_delegated"].items())[:6])
    return text
