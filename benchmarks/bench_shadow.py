"""What a shadow costs the serving path: request latency of a real agent with and without a shadow bundle.

    python benchmarks/bench_shadow.py [--requests 2000] [--rounds 3] [--threads 1] [--hidden 1024]

One process, one ``Agent`` serving an MLP (x[1, 256] -> hidden -> hidden -> 100, Gemm + Relu, onnxruntime,
``--threads`` backend threads) through its queue (``agent.infer``: the path the HTTP API takes), one client
sending requests back to back. Configurations, interleaved round by round so that machine noise hits each
alike: no shadow (the baseline of this run), then a shadow of the same size (weights perturbed, so its
answers differ slightly) on 10% and on 100% of the calls: ``shadow.Shadow`` in its own thread with a queue
of 8, as ``shadowinstall`` runs it, at niceness +19 (the agent's default ``shadow_nice``) and at +0 (``plain``).
Idle shadows (of the configurations not being measured) wait on their queue, waking 10 times a second.
Printed: client-side latency p50/p95/p99 per configuration (all rounds pooled), the median of the per-round p50s, their ratio to the baseline, and the shadow's own counters
(samples, dropped, agreement, both latencies on the sampled calls).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgepack_runtime.agent import Agent  # noqa: E402
from edgepack_runtime.bundle import write_bundle  # noqa: E402
from edgepack_runtime.runtime import Runtime  # noqa: E402
from edgepack_runtime.shadow import Shadow, open_lowered  # noqa: E402

IN, OUT = 256, 100


def mlp(hidden: int, seed: int, noise: float = 0.0) -> tuple[bytes, list]:
    rng = np.random.default_rng(0)
    dims = [IN, hidden, hidden, OUT]
    weights = [rng.standard_normal((a, b)).astype(np.float32) / np.sqrt(a) for a, b in zip(dims, dims[1:])]
    if noise:
        weights = [w + np.random.default_rng(seed).standard_normal(w.shape).astype(np.float32) * noise * w.std()
                   for w in weights]
    nodes, inits, prev = [], [], "x"
    for i, w in enumerate(weights):
        inits.append(numpy_helper.from_array(w.astype(np.float32), f"w{i}"))
        out = "y" if i == len(weights) - 1 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [out if i == len(weights) - 1 else f"m{i}"]))
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [f"m{i}"], [out]))
        prev = out
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, IN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, OUT])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString(), weights


def bundle(folder: Path, version: str, hidden: int, noise: float) -> Path:
    onnx_bytes, _ = mlp(hidden, seed=1, noise=noise)
    target = {"name": "ref", "format": "onnx", "file": "models/ref/model.onnx", "precision": "fp32",
              "io": {"inputs": [{"name": "x", "perm": None}], "outputs": [{"name": "y", "perm": None}]},
              "parity": {}, "info": {}}
    manifest = {"model": {"name": "mlp", "version": version, "source_sha256": "0" * 64, "opsets": {"": 17}},
                "created": "2025-01-01T00:00:00Z", "tools": {"edgepack": "bench"},
                "inputs": [{"name": "x", "shape": [1, IN], "dtype": "float32", "layout": None}],
                "outputs": [{"name": "y", "shape": [1, OUT], "dtype": "float32", "layout": None}],
                "targets": [target], "samples": []}
    return write_bundle(folder / f"mlp-{version}.edgepack", manifest, {"models/ref/model.onnx": onnx_bytes})


def run_config(agent: Agent, xs: list[np.ndarray]) -> list[float]:
    times = []
    for x in xs:
        t0 = time.perf_counter()
        agent.infer({"x": x})
        times.append(time.perf_counter() - t0)
    return times


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--variants", default="nice,plain",
                    help="shadow thread priority: nice (+19, the agent's default shadow_nice) and/or plain (+0)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    serving, candidate = bundle(tmp, "1", args.hidden, 0.0), bundle(tmp, "2", args.hidden, 0.05)
    agent = Agent(Runtime.open(serving, num_threads=args.threads), drift=False).start()
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((1, IN)).astype(np.float32) for _ in range(args.requests)]
    run_config(agent, xs[:200])                                   # warm-up
    configs = {"no shadow": None, "no shadow (A/A)": None}
    for v in args.variants.split(","):
        configs.update({f"{v} 10%": (0.1, v), f"{v} 100%": (1.0, v)})
    times = {name: [] for name in configs}
    p50s = {name: [] for name in configs}
    stop = threading.Event()
    nice = {name: 19 if c[1] == "nice" else 0 for name, c in configs.items() if c is not None}
    shadows = {name: Shadow(open_lowered(lambda: Runtime.open(candidate, num_threads=args.threads), nice[name]),
                            share=configs[name][0], queue_size=8, info={"version": "2"}) for name in nice}
    workers = [threading.Thread(target=s.work, args=(stop,), daemon=True, kwargs={"nice": nice[n]})
               for n, s in shadows.items()]
    for w in workers:                      # idle while their configuration is not measured (a 0.1 s queue poll)
        w.start()
    for _ in range(args.rounds):
        for name in configs:
            agent.shadow = shadows.get(name)
            t = run_config(agent, xs)
            agent.shadow = None
            while name in shadows and shadows[name].queue.qsize():
                time.sleep(0.01)           # the shadow finishes what it queued before the next configuration
            times[name] += t
            p50s[name].append(pct(t, 50))
    stop.set()
    for w in workers:
        w.join(5)
    agent.stop()
    base = statistics.median(p50s["no shadow"])
    print(f"serving MLP {IN}->{args.hidden}->{args.hidden}->{OUT}, onnxruntime, {args.threads} thread(s); "
          f"{args.requests} requests x {args.rounds} rounds per configuration, interleaved")
    print(f"{'configuration':<16} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'median p50':>11} {'ratio':>6}")
    for name in configs:
        med = statistics.median(p50s[name])
        print(f"{name:<16} {pct(times[name], 50):8.3f} {pct(times[name], 95):8.3f} {pct(times[name], 99):8.3f} "
              f"{med:11.3f} {med / base:6.3f}   per round: {' '.join(f'{v:.3f}' for v in p50s[name])}")
    for name, shadow in shadows.items():
        t = shadow.block()["total"]
        a, lat = t["agreement"], t["latency_ms"]
        print(f"{name}: samples {t['samples']}, dropped {t['dropped']}, errors {t['errors']}; top-1 {a['top1']:.3f}, "
              f"cosine mean {a['cosine_mean']:.6f} min {a['cosine_min']:.6f}, max abs {a['max_abs']:.4g}; "
              f"backend p50/p95 ms: shadow {lat['shadow']['p50']:.3f}/{lat['shadow']['p95']:.3f}, "
              f"serving {lat['serving']['p50']:.3f}/{lat['serving']['p95']:.3f}")


if __name__ == "__main__":
    main()
