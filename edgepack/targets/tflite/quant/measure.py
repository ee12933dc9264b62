"""Running candidate .tflite models in LiteRT the way the device does: hold-out accuracy and host latency."""
from __future__ import annotations

import time

import numpy as np
import onnx

from edgepack_runtime.compare import compare_runs, summarize
from edgepack_runtime.precisions import Gate

from .ranges import model_feeds


def run_tflite(data: bytes, io: dict, samples: list[dict], output_names: list[str],
               num_threads: int | None = None) -> list[dict[str, np.ndarray]]:
    """Run a .tflite model in LiteRT on ONNX-layout samples; outputs back in ONNX layout."""
    from edgepack_runtime.backends.tflite import load_litert
    from edgepack_runtime.runtime import from_model_layout
    session = load_litert(data, num_threads=num_threads)
    out = []
    for arrays in model_feeds(samples, io):
        results = session.run(arrays)
        named = {e["name"]: from_model_layout(r, e.get("perm")) for e, r in zip(io["outputs"], results)}
        out.append({n: named[n] for n in output_names})
    session.close()
    return out


def latency_ms(data: bytes, io: dict, sample: dict, *, num_threads: int | None = 1, budget_s: float = 1.5,
               min_runs: int = 3, max_runs: int = 200) -> dict:
    """Mean/p50/p90 single-sample latency in LiteRT (default delegates), measured within ``budget_s``.

    The budget covers everything: loading the interpreter, one warm-up run and the timed runs. Timed runs
    go on while the next one is expected to end inside the budget (at most ``max_runs``); ``min_runs`` are
    made when the warm-up says they fit, else one (a 640x640 detector at ~0.5 s a run gets one or two runs,
    not four seconds of them). ``runs`` in the result says how many were timed.
    """
    from edgepack_runtime.backends.tflite import load_litert
    start = time.perf_counter()
    session = load_litert(data, num_threads=num_threads)
    (arrays,) = model_feeds([sample], io)
    t0 = time.perf_counter()
    session.run(arrays)
    warm = time.perf_counter() - t0
    floor = min_runs if (time.perf_counter() - start) + min_runs * warm <= budget_s else 1
    times: list[float] = []
    while len(times) < floor or (len(times) < max_runs
                                 and time.perf_counter() - start + times[-1] / 1e3 <= budget_s):
        t0 = time.perf_counter()
        session.run(arrays)
        times.append((time.perf_counter() - t0) * 1e3)
    session.close()
    t = np.asarray(times)
    return {"mean": float(t.mean()), "p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
            "runs": len(times), "threads": num_threads}


def measure(data, io, model: onnx.ModelProto, samples, reference, gate: Gate, num_threads=None) -> dict:
    names = [o.name for o in model.graph.output]
    got = run_tflite(data, io, samples, names, num_threads)
    return summarize(compare_runs(got, reference, names), gate)
