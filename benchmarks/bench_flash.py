"""Throughput of ``edgepack flash`` over loopback MQTT and the agent's memory during it, against plain MQTT.

    python benchmarks/bench_flash.py [--mb 100] [--chunk-kb 256] [--rounds 2]

Ours: ``flash(bundle, broker=..., devices=[one])`` to a real ``edgepack-device agent --state-dir`` running in
its own process (pull protocol: per-chunk sha256, window of 16 chunks, staging file written at offsets and
fsynced chunk map), timed from the start until the device reports ``downloaded`` (the transfer) and until
``committed`` (transfer + whole-file check + slot copy + health check + switch).
Baseline, same run, same broker, same file and chunking: paho publishes every chunk at QoS 1 (up to 32 in
flight) and a paho subscriber in its own process writes each at its offset into a file (no hashing, no
requests, no resume) and fsyncs it; and ``shutil.copyfile`` + fsync of the file (the disk alone).
Memory: the agent process's resident set (``/proc/PID/status`` VmRSS, sampled every 5 ms) before the flash
and at its peak while downloading; ``VmHWM`` (reset through ``clear_refs`` before the flash) for the whole
update. The agent's backend serves a tiny model, so its baseline is mostly the interpreter and onnxruntime.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import paho.mqtt.client as mqtt  # noqa: E402

from edgepack.fleet.flash import FlashSettings, flash  # noqa: E402
from tests.agent.conftest import Broker  # noqa: E402
from tests.flash.bundles import make_bundle  # noqa: E402

SUBSCRIBER = r"""
import os, sys, threading, paho.mqtt.client as mqtt
port, path, n, chunk = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
seen, done = set(), threading.Event()
def on_message(c, u, m):
    i = int(m.topic.rsplit("/", 1)[1]); os.pwrite(fd, m.payload, i * chunk); seen.add(i)
    if len(seen) == n: os.fsync(fd); done.set()
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=mqtt.MQTTv5)
c.on_message = on_message
c.on_connect = lambda c, u, f, rc, p=None: c.subscribe("bench/raw/+", qos=1)
c.on_subscribe = lambda *a: print("ready", flush=True)
c.connect("127.0.0.1", port); c.loop_start(); done.wait(600); print("done", flush=True); c.loop_stop()
"""


def rss(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """Peak VmRSS of ``pid`` while ``phase`` is set, sampled every 5 ms."""

    def __init__(self, pid: int):
        self.pid, self.phase, self.peak = pid, "idle", {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.005):
            v = rss(self.pid)
            self.peak[self.phase] = max(self.peak.get(self.phase, 0), v)

    def stop(self):
        self._stop.set()
        self._t.join()


def start_agent(work: Path, port: int, first: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edgepack_runtime.cli", "agent", "--bundle", str(first), "--state-dir",
           str(work / "state"), "--broker", f"mqtt://127.0.0.1:{port}", "--device-id", "bench", "--fleet", "bench",
           "--http-port", "0", "--outbox", str(work / "outbox.db"), "--telemetry-interval", "3600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("edgepack agent"):
        raise SystemExit(f"the agent did not start: {line!r}")
    time.sleep(0.5)                                   # connected and announced
    return proc


def status_times(port: int) -> tuple[mqtt.Client, dict]:
    """A subscriber stamping the first arrival of each ota/status state."""
    stamps: dict[str, float] = {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-status", protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: m.payload and stamps.setdefault(json.loads(m.payload).get("state"),
                                                                    time.perf_counter())
    c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe("edgepack/v1/bench/bench/ota/status", qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    time.sleep(0.3)
    stamps.clear()                                    # the retained status of an earlier update
    return c, stamps


def flash_once(bundle: Path, port: int, chunk: int, agent: subprocess.Popen) -> dict:
    sub, stamps = status_times(port)
    Path(f"/proc/{agent.pid}/clear_refs").write_text("5")      # reset VmHWM
    before = rss(agent.pid)
    sampler = Sampler(agent.pid)
    sampler.phase = "downloading"
    t0 = time.perf_counter()
    (result,) = flash(bundle, broker=f"mqtt://127.0.0.1:{port}", devices=["bench"], fleet="bench",
                      settings=FlashSettings(chunk_size=chunk, timeout=600, discovery=0.5),
                      progress=lambda rows: setattr(sampler, "phase", "downloading" if rows[0]["state"] in (
                          "pending", "downloading") else "installing"))
    t_end = time.perf_counter()
    sampler.stop()
    sub.loop_stop()
    sub.disconnect()
    assert result["state"] == "committed", result
    return {"transfer_s": stamps["downloaded"] - stamps["downloading"], "total_s": t_end - t0, "rss_before": before,
            "setup_s": stamps["downloading"] - t0,
            "rss_peak_download": sampler.peak.get("downloading", 0), "hwm": rss(agent.pid, "VmHWM"),
            "sent": result["host"]["sent"], "resent": result["host"]["resent"]}


def raw_mqtt(path: Path, port: int, chunk: int, work: Path) -> float:
    size = path.stat().st_size
    n = -(-size // chunk)
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(port), str(work / "raw.out"), str(n), str(chunk)],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout.readline().strip() == "ready"
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(32)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    fd = os.open(path, os.O_RDONLY)
    t0 = time.perf_counter()
    infos = []
    for i in range(n):
        infos.append(pub.publish(f"bench/raw/{i}", os.pread(fd, chunk, i * chunk), qos=1))
        while len([x for x in infos[-64:] if not x.is_published()]) >= 32:   # bounded memory, like flash
            time.sleep(0.0005)
    assert sub.stdout.readline().strip() == "done"
    elapsed = time.perf_counter() - t0
    os.close(fd)
    pub.loop_stop()
    pub.disconnect()
    sub.wait(10)
    assert (work / "raw.out").stat().st_size == size
    return elapsed


def copy(path: Path, work: Path) -> float:
    t0 = time.perf_counter()
    shutil.copyfile(path, work / "copy.out")
    with open(work / "copy.out", "rb+") as fh:
        os.fsync(fh.fileno())
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--chunk-kb", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    chunk = args.chunk_kb * 1024
    with tempfile.TemporaryDirectory(prefix="bench-flash-") as tmp:
        work = Path(tmp)
        broker = Broker(work)
        broker.start()
        v1 = make_bundle(work / "v1.edgepack", "1", 1.0)
        bundles = [make_bundle(work / f"big{i}.edgepack", f"{i + 2}", float(i + 2), pad=args.mb * 10 ** 6)
                   for i in range(args.rounds)]
        size = bundles[0].stat().st_size
        agent = start_agent(work, broker.port, v1)
        try:
            ours, raw, cp = [], [], []
            for b in bundles:                          # alternate: ours, raw MQTT, cp
                ours.append(flash_once(b, broker.port, chunk, agent))
                raw.append(raw_mqtt(b, broker.port, chunk, work))
                cp.append(copy(b, work))
        finally:
            agent.terminate()
            agent.wait(20)
            broker.stop()
    mb = size / 1e6
    med = lambda xs: statistics.median(xs)  # noqa: E731
    t_ours, t_total, t_raw, t_cp = (med([o["transfer_s"] for o in ours]), med([o["total_s"] for o in ours]),
                                    med(raw), med(cp))
    print(f"bundle {mb:.1f} MB, chunks of {args.chunk_kb} KiB, {args.rounds} round(s), medians")
    print(f"flash transfer (to 'downloaded')   {t_ours:7.2f} s  {mb / t_ours:8.1f} MB/s")
    print(f"flash end to end (to 'committed')  {t_total:7.2f} s  {mb / t_total:8.1f} MB/s")
    print(f"baseline raw paho QoS 1 + pwrite   {t_raw:7.2f} s  {mb / t_raw:8.1f} MB/s   flash/raw time ratio "
          f"{t_ours / t_raw:.2f}")
    print(f"baseline copyfile + fsync          {t_cp:7.2f} s  {mb / t_cp:8.1f} MB/s")
    for i, o in enumerate(ours):
        print(f"round {i}: agent RSS before {o['rss_before'] / 2**20:.1f} MiB, peak while downloading "
              f"{o['rss_peak_download'] / 2**20:.1f} MiB (+{(o['rss_peak_download'] - o['rss_before']) / 2**20:.1f}), "
              f"peak over the whole update (VmHWM) {o['hwm'] / 2**20:.1f} MiB; chunks sent {o['sent']}, "
              f"resent {o['resent']}")


if __name__ == "__main__":
    main()
