"""Measure which ONNX ops HTP takes, writing ``htp_ops.json`` (the data behind ``edgepack ops --target
qualcomm`` and the placement estimate made without onnxruntime-qnn).

    python -m edgepack.targets.qualcomm.probe [--out PATH] [--limit N]

Every single-op ONNX backend node test (``edgepack.testing.node_tests``) with float tensors is quantized
w8a8 by this target's ``quantize`` (its own inputs as calibration; inputs after the first become constants and
when the test is not wholly on HTP as written, it is tried again with optional outputs after the first
dropped: weights, indices and shapes are constants in real models, and LayerNormalization's Mean or
MaxPool's Indices mostly unused) and compiled for HTP v75 by onnxruntime-qnn; the op counts
as taken when the whole test model runs on HTP (the placement report lists no CPU node). Tests run in worker
processes (a QNN crash costs one test, recorded as such). Takes about ten minutes on two cores.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import onnx

DATA = Path(__file__).with_name("htp_ops.json")
FLOAT = onnx.TensorProto.FLOAT


def candidates(limit: int | None = None) -> list:
    """Single-op node tests of standard-domain ops with a float input or output, sorted by name."""
    from edgepack.testing.node_tests import list_node_tests
    out = []
    for t in list_node_tests():
        if t.skip_reason or len(t.op_types) != 1:
            continue
        graph = onnx.load(t.model, load_external_data=False).graph
        if len(graph.node) != 1 or graph.node[0].domain not in ("", "ai.onnx"):
            continue
        if any(v.type.tensor_type.elem_type == FLOAT for v in list(graph.input) + list(graph.output)):
            out.append(t)
    return out[:limit] if limit else out


def probe_one(test) -> dict:
    """{"test", "op", "since", "htp": bool | None, "why"} for one node test: as written, then (when that is
    not wholly on HTP) with its optional outputs dropped; a refusal is reported before an error."""
    model = onnx.load(test.model)
    node = model.graph.node[0]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    since = onnx.defs.get_schema(node.op_type, opset, "").since_version
    tries = []
    for drop in (False, True):
        htp, why = _attempt(test, model, drop)
        tries.append((htp, why))
        if htp:
            break
    htp, why = next((t for t in tries if t[0]), None) or next((t for t in tries if t[0] is not None), tries[0])
    return {"test": test.name, "op": node.op_type, "since": since, "htp": htp, "why": why}


def _attempt(test, original: onnx.ModelProto, drop_outputs: bool) -> tuple[bool | None, str | None]:
    from .context import compile_context
    from .placement import report
    from .quantize import quantize
    model = onnx.ModelProto()
    model.CopyFrom(original)
    try:
        inputs, _ = test.load_data(0)
        if len(model.graph.input) != len(inputs):
            raise ValueError("optional inputs left out")
        model.graph.node[0].name = model.graph.node[0].name or "the_op"
        _freeze_later_inputs(model, inputs)
        if drop_outputs:
            _drop_optional_outputs(model)
        qdq = quantize(model, [{model.graph.input[0].name: inputs[model.graph.input[0].name]}])
        compiled = compile_context(qdq.SerializeToString())
    except Exception as exc:    # the probe records every failure as data
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    cpu = report(qdq, compiled.model, compiled.log)["cpu"]
    return not cpu, (f"{cpu[0]['op_type']}: {cpu[0]['why']}" if cpu else None)


def _drop_optional_outputs(model: onnx.ModelProto) -> None:
    """Outputs after the first that the op's schema marks optional leave the node and the graph."""
    node = model.graph.node[0]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    params = onnx.defs.get_schema(node.op_type, opset, "").outputs
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    for i in range(1, min(len(node.output), len(params))):
        if params[i].option == optional and node.output[i]:
            gone = node.output[i]
            node.output[i] = ""
            keep = [o for o in model.graph.output if o.name != gone]
            del model.graph.output[:]
            model.graph.output.extend(keep)
    while node.output and not node.output[-1]:
        del node.output[-1]


def _freeze_later_inputs(model: onnx.ModelProto, inputs: dict) -> None:
    """Inputs after the first become initializers holding the test's values."""
    from onnx import numpy_helper
    later = list(model.graph.input)[1:]
    for vi in later:
        model.graph.initializer.append(numpy_helper.from_array(inputs[vi.name], vi.name))
        model.graph.input.remove(vi)


def summarize(rows: list[dict]) -> dict:
    """Per op: the since-versions HTP took, tests tried / taken, and one reason it was refused."""
    from edgepack_runtime.backends import qnn_ep
    ops: dict[str, dict] = {}
    for r in rows:
        op = ops.setdefault(r["op"], {"since": [], "tests": 0, "htp": 0, "refused": None})
        op["tests"] += 1
        if r["htp"]:
            op["htp"] += 1
            op["since"] = sorted(set(op["since"]) | {r["since"]})
        elif r["why"] and not op["refused"]:
            op["refused"] = r["why"]
    return {"generated_by": "python -m edgepack.targets.qualcomm.probe", "precision": "w8a8", "htp_arch": "75",
            "versions": qnn_ep.versions(), "ops": dict(sorted(ops.items()))}


def _worker(start: int, stop: int, out: Path) -> None:
    tests = candidates()
    with out.open("a") as fh:
        for test in tests[start:stop]:
            fh.write(json.dumps(probe_one(test)) + "\n")
            fh.flush()


def run(out: Path, limit: int | None = None) -> dict:
    """Probe every candidate in worker processes; a test that kills its worker is recorded as a crash."""
    tests = candidates(limit)
    names = [t.name for t in tests]
    rows_path = out.with_suffix(".rows.jsonl")
    rows_path.write_text("")
    done = 0
    while done < len(tests):
        subprocess.run([sys.executable, "-m", "edgepack.targets.qualcomm.probe", "--worker", str(done), str(len(tests)), str(rows_path)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
        done = len(rows)
        if done < len(tests):        # the worker died on tests[done]
            crashed = tests[done]
            op = onnx.load(crashed.model, load_external_data=False).graph.node[0].op_type
            with rows_path.open("a") as fh:
                fh.write(json.dumps({"test": names[done], "op": op, "since": 0, "htp": None,
                                     "why": "the QNN compiler crashed"}) + "\n")
            done += 1
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    table = summarize(rows)
    out.write_text(json.dumps(table, indent=1) + "\n")
    rows_path.unlink()
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(int(args.worker[0]), int(args.worker[1]), Path(args.worker[2]))
        return
    table = run(args.out, args.limit)
    taken = sum(1 for o in table["ops"].values() if o["htp"])
    print(f"{taken} of {len(table['ops'])} ops taken by HTP; written to {args.out}")


if __name__ == "__main__":
    main()
