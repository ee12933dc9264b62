"""``edgepack-device bench BUNDLE``: what one prediction costs on this device, per backend and thread count.

For every backend present that runs the bundle (or those named with ``--backend``) and every ``--threads``
count, a fresh Python process opens the bundle, loads it, warms up, then calls it back to back for
``--seconds`` on the bundle's own sample inputs (zeros of the declared shapes when it has none) and reports
latency p50/p99 (exact, from every call), throughput and peak memory: the process's RSS high-water mark
(``VmHWM``) and how much of it loading and running the model added. One process per run keeps each peak its
own and no run warms the next one's caches. With ``--power-watts`` / ``--cost-per-hour`` (the device
profile's ``[power] watts`` / ``[cost] per_hour``) it also gives energy and cost per 1,000 predictions at
full load: the floor the agent's telemetry figures (``cost.py``, over wall time) approach as a device gets busy.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from .cost import per_1k
from .errors import BackendError, EdgepackError


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="latency p50/p99, throughput and peak memory per backend and thread count")
    p.add_argument("bundle", help="bundle file (.edgepack tar) or unpacked bundle folder")
    p.add_argument("--backend", action="append", default=[], help="bench this backend (repeatable; default: "
                   "every installed backend that runs the bundle)")
    p.add_argument("--target", help="bench this target entry of the bundle only")
    p.add_argument("--threads", type=_thread_list, default=None,
                   help="comma-separated thread counts (default: 1 and the CPU count)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed calls per run, in seconds (default 3)")
    p.add_argument("--warmup", type=int, default=5, help="untimed calls before each run (default 5)")
    p.add_argument("--power-watts", type=float, help="the device's power draw: adds energy per 1,000 predictions")
    p.add_argument("--cost-per-hour", type=float, help="price of a device-hour: adds cost per 1,000 predictions")
    p.add_argument("--trust-key", dest="trust_keys", action="append", default=[], metavar="PUB",
                   help="accept only bundles signed by this public key (repeatable)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--verbose", "-v", action="store_true", help="show tracebacks on errors")


def _thread_list(text: str) -> list[int]:
    import argparse
    try:
        counts = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes numbers like 1,2,4, not {text!r}") from None
    if not counts or not all(1 <= t <= 1024 for t in counts):
        raise argparse.ArgumentTypeError(f"takes thread counts in [1, 1024], not {text!r}")
    return counts


def plan(args) -> list[tuple[str, str, int]]:
    """(backend, target, threads) runs: one target per backend (the best it runs), every thread count."""
    from .backends import candidates
    from .signing import open_verified
    bundle = open_verified(args.bundle, args.trust_keys)[0]
    targets = bundle.manifest["targets"]
    pairs = [p for name in args.backend for p in candidates(targets, name, args.target)[:1]] if args.backend \
        else candidates(targets, None, args.target)
    seen, runs = set(), []
    threads = args.threads or sorted({1, os.cpu_count() or 1})
    for spec, entry in pairs:
        if spec.name not in seen:
            seen.add(spec.name)
            runs += [(spec.name, entry["name"], n) for n in threads]
    return runs


def bench(args) -> dict:
    """Run every planned configuration in its own process; the report ``--json`` prints."""
    if not 0 < args.seconds <= 3600:
        raise EdgepackError(f"--seconds must be in (0, 3600], not {args.seconds!r}")
    for flag, value in (("--power-watts", args.power_watts), ("--cost-per-hour", args.cost_per_hour)):
        if value is not None and not 0 <= value <= 1e6:
            raise EdgepackError(f"{flag} must be in [0, 1000000], not {value!r}")
    runs = []
    for backend, target, threads in plan(args):
        spec = {"bundle": str(args.bundle), "backend": backend, "target": target, "threads": threads,
                "seconds": args.seconds, "warmup": max(0, args.warmup)}
        run = {**spec, **_child(spec)}
        for key, rate in (("energy_j_per_1k", args.power_watts),
                          ("cost_per_1k", None if args.cost_per_hour is None else args.cost_per_hour / 3600)):
            run[key] = None if rate is None or "error" in run else per_1k(rate, run["elapsed_s"], run["calls"])
        runs.append(run)
    if all("error" in r for r in runs):
        raise BackendError("no run finished: " + "; ".join(f"{r['backend']}: {r['error']}" for r in runs))
    return {"bundle": str(args.bundle), "seconds": args.seconds, "power_watts": args.power_watts,
            "cost_per_hour": args.cost_per_hour, "cpu_count": os.cpu_count(), "runs": runs}


def _child(spec: dict) -> dict:
    """One run in a fresh interpreter (its own memory high-water mark); its JSON answer, or ``error``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-m", "edgepack_runtime.bench", json.dumps(spec)], capture_output=True,
                          text=True, env=env, timeout=spec["seconds"] + 600)
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"error": (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1][:500]}


def peak_rss_bytes() -> int | None:
    """This process's resident-set high-water mark (Linux ``VmHWM``; ``ru_maxrss`` elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
        scale = 1 if sys.platform == "darwin" else 1024        # macOS reports bytes, Linux kilobytes
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale
    except (ImportError, OSError):
        return None


def inputs_of(bundle) -> list[dict]:
    """The bundle's sample inputs, or one set of zeros of the declared shapes (dynamic dimensions as 1)."""
    samples = [inp for inp, _ in bundle.samples()]
    return samples or [{s["name"]: np.zeros([d if d > 0 else 1 for d in s["shape"]], s["dtype"])
                        for s in bundle.manifest["inputs"]}]


def measure(spec: dict) -> dict:
    """The child's work: load, warm up, time back-to-back calls for ``seconds``."""
    from .bundle import Bundle
    from .runtime import Runtime
    before = peak_rss_bytes()
    bundle = Bundle.open(spec["bundle"])
    feeds = inputs_of(bundle)
    t0 = time.perf_counter()
    rt = Runtime.open(bundle, spec["backend"], num_threads=spec["threads"], target=spec["target"])
    load_s = time.perf_counter() - t0
    for i in range(spec["warmup"]):
        rt.run(feeds[i % len(feeds)])
    times, start = [], time.perf_counter()
    end = start + spec["seconds"]
    while not times or time.perf_counter() < end:
        t = time.perf_counter()
        rt.run(feeds[len(times) % len(feeds)])
        times.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    ms = np.sort(np.asarray(times)) * 1e3
    peak = peak_rss_bytes()
    mb = lambda b: None if b is None else round(b / 2 ** 20, 1)  # noqa: E731
    return {"backend_detail": rt.backend_detail, "calls": len(times), "elapsed_s": elapsed,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "throughput_per_s": len(times) / elapsed, "load_s": round(load_s, 4),
            "rss_before_mb": mb(before), "peak_rss_mb": mb(peak),
            "model_rss_mb": mb(peak - before) if peak is not None and before is not None else None}


def render(report: dict) -> str:
    """The human table."""
    lines = [f"bench {report['bundle']}: {report['seconds']:g} s per run, {report['cpu_count']} CPUs"]
    head = f"  {'backend':<16}{'target':<10}{'threads':>7}{'p50 ms':>10}{'p99 ms':>10}{'per s':>10}{'peak MB':>9}" \
           f"{'model MB':>9}"
    extra = [k for k in ("energy_j_per_1k", "cost_per_1k") if report[{"energy_j_per_1k": "power_watts",
                                                                       "cost_per_1k": "cost_per_hour"}[k]] is not None]
    lines.append(head + "".join(f"{'J/1k' if k.startswith('energy') else 'cost/1k':>10}" for k in extra))
    for r in report["runs"]:
        if "error" in r:
            lines.append(f"  {r['backend']:<16}{r['target']:<10}{r['threads']:>7}  failed: {r['error']}")
            continue
        row = f"  {r['backend']:<16}{r['target']:<10}{r['threads']:>7}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}" \
              f"{r['throughput_per_s']:>10.1f}{_num(r['peak_rss_mb']):>9}{_num(r['model_rss_mb']):>9}"
        lines.append(row + "".join(f"{r[k]:>10.4g}" for k in extra))
    return "\n".join(lines)


def _num(v) -> str:
    return "-" if v is None else f"{v:.1f}"


def cmd_bench(args) -> int:
    report = bench(args)
    print(json.dumps(report, indent=1) if args.json else render(report))
    return 0


if __name__ == "__main__":          # the child of one run: a JSON spec in, one JSON line out
    try:
        answer = measure(json.loads(sys.argv[1]))
    except EdgepackError as exc:
        answer = {"error": str(exc)}
    print(json.dumps(answer), flush=True)
