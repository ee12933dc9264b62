"""Where a .tflite model's time goes: each op timed alone in LiteRT (XNNPACK, 1 thread), as a one-op model cut
from the file (same tensors, parameters and weights), against the whole model's time measured in the same run.

The sum of the ops is close to the whole model when XNNPACK takes the graph in one piece (basic-pitch int8:
143 ms summed, 142 ms whole); what it cannot show is the cost of leaving XNNPACK between partitions. This is
how the thin convolutions ``passes.block_thin_convs`` rewrites were found (basic-pitch's 256-tap 1-channel
low-pass filter: 34.6 ms in int8, 9.6 ms in fp32).

    python benchmarks/bench_op_profile.py model.tflite [--top 25] [--reps 20] [--json out.json]

Two files (``a.tflite b.tflite``, e.g. fp32 and int8 of one model) print side by side per opcode.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.interpreter import Interpreter

OPCODES = {v: k for k, v in fb.BuiltinOperator.__dict__.items() if not k.startswith("_")}


def one_op(model: fb.ModelT, i: int) -> bytes:
    """Op ``i`` of subgraph 0 as a model of its own: its constant inputs stay constants, the others become
    the model's inputs."""
    m = copy.deepcopy(model)
    g = m.subgraphs[0]
    op = g.operators[i]

    def const(t: int) -> bool:
        data = m.buffers[g.tensors[t].buffer].data
        return data is not None and len(data) > 0

    g.operators = [op]
    g.inputs = np.asarray([t for t in op.inputs if t >= 0 and not const(t)], np.int32)
    g.outputs = np.asarray(op.outputs, np.int32)
    m.signatureDefs = []
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def fed(data: bytes, seed: int = 0) -> Interpreter:
    """A 1-thread LiteRT interpreter of ``data`` with random inputs set and one warm-up run done."""
    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    rng = np.random.default_rng(seed)
    for d in it.get_input_details():
        dt, shape = d["dtype"], d["shape"]
        x = (rng.standard_normal(shape).astype(dt) if np.issubdtype(dt, np.floating)
             else rng.integers(-100, 100, size=shape).astype(dt) if np.issubdtype(dt, np.signedinteger)
             else rng.integers(0, 100, size=shape).astype(dt))
        it.set_tensor(d["index"], x)
    it.invoke()
    return it


def median_ms(data: bytes, reps: int, seed: int = 0) -> float:
    it = fed(data, seed)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def profile(data: bytes, reps: int = 20) -> dict:
    """{"whole_ms", "ops_ms" (sum), "ops": [{"index", "opcode", "output", "ms"}]} (ms None: the op alone
    does not run, e.g. a shape-dependent op)."""
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(data, 0))
    g = model.subgraphs[0]
    rows = []
    for i, op in enumerate(g.operators):
        code = model.operatorCodes[op.opcodeIndex]
        name = OPCODES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")
        try:
            ms = median_ms(one_op(model, i), reps)
        except Exception:           # an op that needs its neighbours (dynamic shapes): reported, not timed
            ms = None
        rows.append({"index": i, "opcode": name, "output": g.tensors[op.outputs[0]].name.decode(), "ms": ms})
    return {"whole_ms": median_ms(data, max(5, reps // 2)), "ops_ms": sum(r["ms"] or 0.0 for r in rows),
            "ops": rows}


def by_opcode(prof: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in prof["ops"]:
        out[r["opcode"]] = out.get(r["opcode"], 0.0) + (r["ms"] or 0.0)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    profs = {str(p): profile(p.read_bytes(), args.reps) for p in args.models}
    for name, prof in profs.items():
        print(f"{name}: whole model {prof['whole_ms']:.2f} ms, its ops alone {prof['ops_ms']:.2f} ms")
        for r in sorted((r for r in prof["ops"] if r["ms"] is not None), key=lambda r: -r["ms"])[:args.top]:
            print(f"  {r['ms']:9.3f} ms  #{r['index']:<4d} {r['opcode']:18s} {r['output'][:70]}")
    if len(profs) == 2:
        (a, pa), (b, pb) = profs.items()
        ca, cb = by_opcode(pa), by_opcode(pb)
        print(f"\nper opcode, ms: {Path(a).name} | {Path(b).name}")
        for op in sorted(set(ca) | set(cb), key=lambda k: -max(ca.get(k, 0), cb.get(k, 0))):
            print(f"  {op:18s} {ca.get(op, 0.0):9.3f} {cb.get(op, 0.0):9.3f}")
    if args.json:
        args.json.write_text(json.dumps(profs, indent=1))


if __name__ == "__main__":
    sys.exit(main())
