"""Where each node runs: HTP (inside an EPContext partition of the EP-context model) or CPU (left as an ONNX
node), with the QNN EP's own reason for each node it refused (from its verbose log).

The QuantizeLinear of a graph input and the DequantizeLinear of a graph output are CPU nodes by design
(QNN does not take them) and are not counted as fallback. Other Q/DQ nodes left on CPU belong to the CPU node
they quantize; they are listed only when that node is not itself on CPU.
"""
from __future__ import annotations

import re

import onnx

from ...errors import EdgepackError

QDQ = ("QuantizeLinear", "DequantizeLinear")
_HEADER = re.compile(r"Validation (PASSED|FAILED) for \d+ nodes in OrtNodeUnit")
_NODE = re.compile(r"Operator type: (\S+) Node name: (.*?) Node index:")
_REASON = re.compile(r"REASON : (.*)")
_NOT_ASSIGNED = re.compile(r"\w+ node `[^`]*` will not be assigned to QNN EP\.?\s*$")
_COMPOSE = re.compile(r"failed for node `([^`]*)` of type `([^`]*)` with error code (\d+)")


def report(qdq: onnx.ModelProto, ctx: onnx.ModelProto | None, log: str = "") -> dict:
    """The manifest's ``qnn.placement``: htp_nodes, cpu_nodes, fraction_on_htp, partitions, cpu (a list of
    {name, op_type, why}). ``ctx`` None: nothing was compiled, every node counts as CPU."""
    reasons = refusals(log)
    compute = [n for n in qdq.graph.node if n.op_type not in QDQ]
    if ctx is None:
        cpu = [_row(n, reasons.get(n.name, "no context binary was compiled")) for n in compute]
        return _figures(0, cpu, 0)
    boundary = boundary_nodes(ctx)
    left = [n for n in ctx.graph.node if n.op_type != "EPContext" and n.name not in boundary]
    cpu = [_row(n, reasons.get(n.name) or _guess(n, qdq)) for n in left if n.op_type not in QDQ]
    cpu_inputs = {i for n in left if n.op_type not in QDQ for i in n.input}
    cpu_outputs = {o for n in left if n.op_type not in QDQ for o in n.output}
    for n in left:          # Q/DQ not attached to a CPU node: a fallback of its own
        if n.op_type in QDQ and not (set(n.output) & cpu_inputs or set(n.input) & cpu_outputs):
            cpu.append(_row(n, reasons.get(n.name, "QNN did not take this quantize/dequantize node")))
    on_cpu = sum(1 for r in cpu if r["op_type"] not in QDQ)
    htp = max(len(compute) - on_cpu, 0)
    return _figures(htp, cpu, sum(1 for n in ctx.graph.node if n.op_type == "EPContext"))


def estimate(qdq: onnx.ModelProto) -> dict:
    """The placement expected from the measured HTP op table (``ops.py``), for hosts without onnxruntime-qnn:
    the same fields as ``report`` plus ``"estimated": True``."""
    from .ops import takes
    compute = [n for n in qdq.graph.node if n.op_type not in QDQ]
    cpu = [_row(n, "not in the HTP op table (edgepack ops --target qualcomm)") for n in compute
           if not takes(n.op_type, n.domain)]
    return dict(_figures(len(compute) - len(cpu), cpu, None), estimated=True)


def boundary_nodes(ctx: onnx.ModelProto) -> set[str]:
    """Names of the Q nodes reading a graph input and DQ nodes writing a graph output (CPU by design)."""
    inputs = {i.name for i in ctx.graph.input}
    outputs = {o.name for o in ctx.graph.output}
    return {n.name for n in ctx.graph.node
            if (n.op_type == "QuantizeLinear" and n.input[0] in inputs)
            or (n.op_type == "DequantizeLinear" and n.output[0] in outputs)}


def require_npu(placement: dict, target: str = "qualcomm") -> None:
    """EdgepackError listing every node that falls back to CPU (``--require-npu``)."""
    cpu = placement["cpu"]
    if not cpu:
        return
    listed = "; ".join(f"{r['op_type']} '{r['name']}' ({r['why']})" for r in cpu[:20])
    more = f" and {len(cpu) - 20} more" if len(cpu) > 20 else ""
    raise EdgepackError(f"--require-npu: {len(cpu)} node(s) of target '{target}' would run on CPU instead of "
                        f"the NPU: {listed}{more}",
                        hint="rewrite or remove these nodes (see `edgepack ops --target qualcomm`), or build "
                             "without --require-npu to accept the CPU fallback")


def refusals(log: str) -> dict[str, str]:
    """node name -> the QNN EP's reason for refusing it, from its verbose log (first reason wins)."""
    out: dict[str, str] = {}
    failed, unit = False, []
    for line in log.splitlines():
        if header := _HEADER.search(line):
            failed, unit = header.group(1) == "FAILED", []
        elif failed and (node := _NODE.search(line)):
            unit.append(node.group(2))
        elif failed and (reason := _REASON.search(line)):
            why = _NOT_ASSIGNED.sub("", reason.group(1)).strip()[:300]
            for name in unit:
                out.setdefault(name, why)
    return out


def compose_errors(log: str) -> list[str]:
    """The nodes QNN failed to add to its graph ("node 'x' (ElementWiseLog): QNN error 6007")."""
    return [f"node '{m.group(1)}' ({m.group(2)}): QNN error {m.group(3)}" for m in _COMPOSE.finditer(log)]


def _guess(node: onnx.NodeProto, qdq: onnx.ModelProto) -> str:
    if node.name not in {n.name for n in qdq.graph.node}:
        return "inserted by onnxruntime between HTP partitions (layout or type conversion)"
    return "QNN did not take this node (no reason logged)"


def _row(node: onnx.NodeProto, why: str) -> dict:
    return {"name": node.name, "op_type": node.op_type, "why": why}


def _figures(htp: int, cpu: list[dict], partitions: int) -> dict:
    cpu_nodes = len(cpu)
    total = htp + cpu_nodes
    return {"htp_nodes": htp, "cpu_nodes": cpu_nodes, "fraction_on_htp": round(htp / total, 4) if total else 0.0,
            "partitions": partitions, "cpu": cpu}
