"""Load on the agent's local HTTP API: N concurrent keep-alive clients POST /v1/infer for T seconds against a
mid-size model (openWakeWord's audio embedding model from the corpus, built with `edgepack build`), served by
`edgepack-device agent` in its own process. Clients honour 503's retry_after_ms. Prints throughput, p50/p99
latency, 200s, 503s, resets and other errors (goal: zero resets, zero errors) and the agent's peak RSS.

    python benchmarks/bench_agent_load.py [--clients 50 200] [--seconds 10] [--body json|npy]
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
MODEL = "audio_oww_embedding_model.onnx"


def build_bundle(out: Path) -> tuple[Path, str, list[int]]:
    from edgepack.build import build
    from edgepack.testing import corpus
    (name, shape), = corpus.INPUT_SHAPES[MODEL].items()
    rng = np.random.default_rng(0)
    samples = [{name: rng.standard_normal(shape).astype(np.float32)} for _ in range(20)]
    return build(corpus.fetch(MODEL), targets=["cpu"], input_shapes={name: shape}, samples=samples,
                 out=out / "m.edgepack").path, name, shape


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_clients(port: int, n: int, seconds: float, body: bytes, ctype: str) -> dict:
    stats = {"200": 0, "503": 0, "reset": 0, "error": 0, "lat": []}
    lock, go = threading.Lock(), threading.Event()
    end = [0.0]

    def client():
        conn, lat, counts = None, [], {"200": 0, "503": 0, "reset": 0, "error": 0}
        go.wait()
        while time.monotonic() < end[0]:
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/infer", body, {"Content-Type": ctype})
                r = conn.getresponse()
                data = r.read()
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                counts["reset"] += 1
                conn.close()
                conn = None
                continue
            except Exception:
                counts["error"] += 1
                conn.close()
                conn = None
                continue
            if r.status == 200:
                counts["200"] += 1
                lat.append(time.perf_counter() - t0)
            elif r.status == 503 and json.loads(data).get("retry_after_ms") and r.getheader("Retry-After"):
                counts["503"] += 1
                time.sleep(json.loads(data)["retry_after_ms"] / 1e3)
            else:
                counts["error"] += 1
            if r.getheader("Connection") == "close":
                conn.close()
                conn = None
        with lock:
            for k, v in counts.items():
                stats[k] += v
            stats["lat"] += lat
    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    end[0] = time.monotonic() + seconds
    go.set()
    for t in threads:
        t.join(seconds + 120)
    return stats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--body", choices=["json", "npy"], default="json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, name, shape = build_bundle(Path(tmp))
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        if args.body == "npy":
            buf = io.BytesIO()
            np.save(buf, x)
            body, ctype = buf.getvalue(), "application/x-npy"
        else:
            body, ctype = json.dumps({"inputs": {name: x.tolist()}}).encode(), "application/json"
        for n in args.clients:
            proc = subprocess.Popen([sys.executable, "-m", "edgepack_runtime.cli", "agent", "--bundle", str(path),
                                     "--http-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                port = int(proc.stdout.readline().split("http://127.0.0.1:")[1].split("/")[0])
                base = peak_rss_mb(proc.pid)
                s = run_clients(port, n, args.seconds, body, ctype)
                lat = np.array(s["lat"]) * 1e3
                p50, p99 = (np.percentile(lat, [50, 99]) if len(lat) else (float("nan"),) * 2)
                print(f"{MODEL} {args.body} body {len(body)} B, {n} clients x {args.seconds:g} s: "
                      f"{s['200'] / args.seconds:.1f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                      f"200: {s['200']}, 503: {s['503']}, resets: {s['reset']}, errors: {s['error']}, "
                      f"agent RSS {base:.0f} MB idle, peak {peak_rss_mb(proc.pid):.0f} MB", flush=True)
            finally:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
