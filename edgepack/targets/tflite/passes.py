"""Peephole passes on the IR after layout optimization."""
from __future__ import annotations

from ai_edge_litert import schema_py_generated as fb

from .ir import Graph

_FUSABLE_ACT = {"RELU": fb.ActivationFunctionType.RELU, "RELU6": fb.ActivationFunctionType.RELU6,
                "RELU_N1_TO_1": fb.ActivationFunctionType.RELU_N1_TO_1}
_HOSTS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV",
          "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION", "TRANSPOSE_CONV"}


def fuse_activations(graph: Graph) -> int:
    """Fold RELU/RELU6/RELU_N1_TO_1 into the op producing their input (TFLite's fused activation)."""
    fused = 0
    users = graph.consumers()
    prod = graph.producers()
    for op in list(graph.ops):
        act = _FUSABLE_ACT.get(op.opcode)
        src = op.inputs[0] if act is not None else None
        host = prod.get(src) if src is not None else None
        if host is None or host.opcode not in _HOSTS or host.options is None:
            continue
        if len(users.get(src, [])) != 1 or src in graph.outputs:
            continue
        if getattr(host.options, "fusedActivationFunction", None) != fb.ActivationFunctionType.NONE:
            continue
        if graph.tensors[src].dtype.kind != "f":
            continue
        host.options.fusedActivationFunction = act
        host.outputs[0] = op.outputs[0]
        graph.ops.remove(op)
        prod[op.outputs[0]] = host
        fused += 1
    graph.prune()
    return fused
