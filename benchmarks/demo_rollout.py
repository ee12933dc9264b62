"""A staged rollout in the fleet simulator, as issue #13 asks to show it: a good bundle reaches 100% in waves; a
slower one, one that errors on the fleet's traffic and one whose inputs drift from its baseline each stop at the
canary and roll it back. What the monitor (``edgepack.fleet.ingest.Monitor``, the live view behind ``edgepack
monitor``) sees after each rollout is printed too.

    python benchmarks/demo_rollout.py [--devices 10] [--soak 5] [--rate 10]

One real mosquitto on loopback; ``edgepack fleet simulate --ota``'s Simulator runs the devices (real agents, A/B
state folders) in this process, fed ``--rate`` requests/s each; each ``edgepack rollout`` runs as its own process,
as an operator runs it. Bundles: tests/fleet/rollout_kit.py (the slow one is slow for real: 128 rows through
eight 512x512 layers). Baseline, same run: a plain ``edgepack flash`` of the whole fleet (no waves, no gates);
the ratio says what the safety costs in wall time.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgepack.fleet.ingest import Monitor  # noqa: E402
from tests.agent.conftest import Broker  # noqa: E402
from tests.fleet.rollout_kit import Fleet, make  # noqa: E402

CLI = [sys.executable, "-m", "edgepack.cli.main"]


def rollout(bundle: Path, fleet: str, url: str, state: Path, soak: float) -> tuple[dict, float]:
    cmd = CLI + ["rollout", str(bundle), "--fleet", fleet, "--broker", url, "--canary", "10%",
                 "--waves", "25%,50%,100%", "--max-error-rate", "0.02", "--max-p95-ratio", "4", "--p95-floor-ms", "2",
                 "--max-drift", "0.5",
                 "--min-calls", "20", "--soak", str(soak), "--soak-max", str(3 * soak), "--baseline-window",
                 str(soak), "--baseline-wait", str(3 * soak), "--discovery", "1", "--state", str(state), "--json"]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - t0
    if not done.stdout.strip():
        raise SystemExit(f"rollout failed to run: {done.stderr}")
    return json.loads(done.stdout), seconds


def monitor_view(mon: Monitor, fleet: str) -> str:
    rows = mon.state.snapshot(fleet=fleet)["devices"]
    versions = Counter(r["version"] for r in rows)
    states = Counter(r["ota_state"] for r in rows)
    return (f"monitor: {len(rows)} devices, versions {dict(sorted(versions.items()))}, "
            f"update states {dict(sorted((str(k), v) for k, v in states.items()))}")


def show(kind: str, doc: dict, seconds: float) -> None:
    print(f"\n== {kind}: {doc['bundle']['model_id']} -> {doc['status']} in {seconds:.1f} s")
    for w in doc["waves"]:
        t = w.get("timing") or {}
        d = w.get("decision") or {}
        f, b = (w.get("figures") or {}).get("all") or {}, (w.get("baseline") or {}).get("all") or {}
        verdict = "passed" if d.get("passed") else f"FAILED {','.join(d.get('failed', []))}" if d else "-"
        print(f"  {w['name']:7s} {len(w['devices']):2d} dev  {w['state']:8s} baseline {t.get('baseline_s', 0):4.1f} s"
              f"  flash {t.get('flash_s', 0):4.1f} s  soak {t.get('soak_s', 0):4.1f} s  {verdict}"
              + (f"  calls {f.get('calls')} err {f.get('error_rate')} p95 {f.get('p95_ms')} ms (before "
                 f"{b.get('p95_ms')}) drift {f.get('drift_share')}" if f else ""))
    if doc.get("reason"):
        print(f"  reason: {doc['reason']}")
    if doc.get("rollback"):
        rb = doc["rollback"]
        print(f"  rollback {rb['seconds']} s: " + ", ".join(f"{k} {v['state']}" for k, v in rb["devices"].items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--soak", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=10.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="demo-rollout-"))
    (tmp / "mq").mkdir()
    broker = Broker(tmp / "mq")
    broker.start()
    url, fleet = f"mqtt://127.0.0.1:{broker.port}", "demo"
    bundles = {"v1": make(tmp / "v1.edgepack", "1"), "slow": make(tmp / "slow.edgepack", "2-slow", "slow", bias=2),
               "errors": make(tmp / "errors.edgepack", "2-errors", "errors", bias=2),
               "drift": make(tmp / "drift.edgepack", "2-drift", "drift", bias=2),
               "good": make(tmp / "good.edgepack", "2", bias=2), "v3": make(tmp / "v3.edgepack", "3")}
    sim = Fleet(tmp / "fleet", broker.port, fleet, bundles["v1"], n=args.devices, rate=args.rate)
    mon = Monitor(url, fleet=fleet).start()
    results = {}
    try:
        t0 = time.monotonic()
        sim.start()
        print(f"{args.devices} simulated devices up in {time.monotonic() - t0:.1f} s, {args.rate:g} requests/s each")
        mon.wait_connected(10)
        time.sleep(3)
        print(monitor_view(mon, fleet))
        for kind in ("slow", "errors", "drift", "good"):
            doc, seconds = rollout(bundles[kind], fleet, url, tmp / f"{kind}.json", args.soak)
            show(kind, doc, seconds)
            time.sleep(1.5)                      # a telemetry period or two: the monitor sees the devices' models
            print("  " + monitor_view(mon, fleet))
            results[kind] = {"status": doc["status"], "seconds": round(seconds, 1),
                             "failed": (doc["waves"][0].get("decision") or {}).get("failed"),
                             "waves": [{"name": w["name"], "devices": len(w["devices"]), **(w.get("timing") or {})}
                                       for w in doc["waves"]],
                             "rollback_s": (doc.get("rollback") or {}).get("seconds")}
        t0 = time.monotonic()
        flashed = subprocess.run(CLI + ["flash", str(bundles["v3"]), "--fleet", fleet, "--broker", url,
                                        "--discovery", "1", "--json"], capture_output=True, text=True, timeout=600)
        plain = time.monotonic() - t0
        ok = sum(r["ok"] for r in json.loads(flashed.stdout))
        print(f"\nbaseline: plain edgepack flash of all {args.devices} devices (no waves, no gates): {plain:.1f} s "
              f"({ok} committed)")
        print(f"good rollout / plain flash: {results['good']['seconds'] / plain:.1f}x wall time "
              f"(4 soaks of {args.soak:g} s are most of it)")
        results["plain_flash_s"] = round(plain, 1)
        print(json.dumps(results))
    finally:
        mon.stop()
        sim.stop()
        broker.stop()


if __name__ == "__main__":
    main()
