"""Monitor ingest rate (issue #13): messages per second one ``Monitor`` process takes in with the history on
(SQLite, every message stored), against a bare paho subscriber that only parses the JSON; same run, same
broker (mosquitto on loopback), same messages, at QoS 0 and QoS 1.

Each subscriber drains a backlog: it opens a persistent session and leaves, ``--publishers`` paho clients
(separate processes) publish ``--messages`` realistic device envelopes (telemetry as the agent sends it, one
drift window in ten) from ``--devices`` devices into it, then the subscriber comes back and the clock runs
from its first message to its last one (for the monitor: to the last one committed to the history). Draining
a backlog measures what the subscriber sustains without the publishers competing for the same CPU. Rounds
alternate bare / monitor without history (parse, gate, live state) / monitor with history; the best round
of each is printed with the ratio to the bare subscriber.

    python benchmarks/bench_monitor_ingest.py                     # figures for benchmarks/RESULTS.md
    python benchmarks/bench_monitor_ingest.py --messages 5000 --rounds 1   # a quick look
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgepack.fleet.gate import GateSettings  # noqa: E402
from edgepack.fleet.ingest import Monitor  # noqa: E402
from tests.agent.conftest import Broker  # noqa: E402
from tests.fleet.envelopes import drift_body, telemetry_body  # noqa: E402

BROKER_CONF = """user {user}
listener {port} 127.0.0.1
persistence false
max_queued_messages 0
max_queued_bytes 0
queue_qos0_messages true
log_type error
log_dest file {dir}/mosquitto.log
allow_anonymous true
"""


def publish(port: int, qos: int, first: int, count: int, devices: int) -> None:
    """One publisher process: ``count`` envelopes, device ``i % devices``, seq per device, drift every 10th."""
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", port)
    c.loop_start()
    tel, drift = telemetry_body(), drift_body()
    info = None
    for i in range(first, first + count):
        device = f"dev{i % devices:05d}"
        kind, body = ("drift", drift) if i % 10 == 9 else ("telemetry", tel)
        doc = {"schema": 1, "seq": i // devices + 1, "ts": time.time(), "device": device, "fleet": "bench", **body}
        while True:
            info = c.publish(f"edgepack/v1/bench/{device}/{kind}", json.dumps(doc).encode(), qos=qos)
            if info.rc == 0:
                break
            time.sleep(0.001)
    if info is not None and qos:
        info.wait_for_publish(60)
    time.sleep(0.2)
    c.disconnect()
    c.loop_stop()


def preload(port: int, qos: int, n: int, devices: int, publishers: int) -> float:
    per = n // publishers
    t0 = time.perf_counter()
    procs = [multiprocessing.Process(target=publish, args=(port, qos, k * per, per if k < publishers - 1 else
                                                           n - k * per, devices)) for k in range(publishers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    return n / (time.perf_counter() - t0)


class Bare:
    """paho, MQTT 5, persistent session, on_message = json.loads and a count."""

    def __init__(self, port: int, qos: int, client_id: str):
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        self.count, self.first, self.last = 0, None, None
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.on_message = self._msg
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe("edgepack/v1/#", qos=qos)
        self.subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.c.connect("127.0.0.1", port, clean_start=False, properties=props)
        self.c.loop_start()
        self.subscribed.wait(10)

    def _msg(self, client, userdata, msg):
        json.loads(msg.payload)
        self.count += 1
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def drain_bare(port: int, qos: int, n: int, devices: int, publishers: int, tag: str) -> dict:
    Bare(port, qos, tag).close()                           # the session exists: messages queue for it
    preload(port, qos, n, devices, publishers)
    sub = Bare(port, qos, tag)
    _wait(lambda: sub.count >= n, lambda: sub.last)
    sub.close()
    return _rate(sub.count, n, sub.first, sub.last)


def drain_monitor(port: int, qos: int, n: int, devices: int, publishers: int, tag: str, db: Path | None,
                  batch: int = 2000) -> dict:
    settings = GateSettings(rate=1000, burst=10_000)       # a backlog arrives at once: not a flood
    mon = Monitor(f"mqtt://127.0.0.1:{port}", client_id=tag, qos=qos, gate=settings)
    mon.start().wait_connected(10)
    mon.stop()
    preload(port, qos, n, devices, publishers)
    mon = Monitor(f"mqtt://127.0.0.1:{port}", client_id=tag, qos=qos, gate=settings, batch=batch,
                  history=f"sqlite:///{db}" if db else None)
    first, last = [], [None]
    mon.add_listener(lambda m: first.append(time.perf_counter()) if not first else None)

    def done():
        if mon.received >= n and mon.flushed():
            last[0] = last[0] or time.perf_counter()
            return True
        return False
    mon.start()
    _wait(done, lambda: first and time.perf_counter())
    stats = mon.stats()
    mon.stop()
    out = _rate(mon.received, n, first[0] if first else None, last[0])
    out.update(rejected=sum(stats["rejected"].values()))
    if db:
        out.update(written=stats["history"]["written"], dropped=stats["history"]["dropped"])
    return out


def _wait(finished, progress, idle: float = 10.0, limit: float = 600.0) -> None:
    start = time.monotonic()
    while not finished() and time.monotonic() - start < limit:
        time.sleep(0.01)
        if progress() is None and time.monotonic() - start > idle:
            return


def _rate(got: int, n: int, first, last) -> dict:
    if first is None or last is None or last <= first:
        return {"received": got, "expected": n, "rate": 0.0}
    return {"received": got, "expected": n, "rate": got / (last - first), "seconds": last - first}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=40_000)
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--publishers", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--qos", type=int, nargs="+", default=[0, 1])
    args = ap.parse_args()
    import getpass
    import paho.mqtt
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    broker = Broker(tmp)
    broker.conf.write_text(BROKER_CONF.format(user=getpass.getuser(), port=broker.port, dir=tmp))
    broker.start()
    print(f"paho-mqtt {paho.mqtt.__version__}, mosquitto on 127.0.0.1:{broker.port}, {args.messages} messages "
          f"from {args.devices} devices, {args.publishers} publisher processes, {args.rounds} round(s)")
    try:
        for qos in args.qos:
            runs: dict[str, list] = {"bare": [], "live": [], "history": []}
            for r in range(args.rounds):
                runs["bare"].append(drain_bare(broker.port, qos, args.messages, args.devices, args.publishers,
                                               f"bare{qos}{r}"))
                runs["live"].append(drain_monitor(broker.port, qos, args.messages, args.devices, args.publishers,
                                                  f"live{qos}{r}", None))
                runs["history"].append(drain_monitor(broker.port, qos, args.messages, args.devices, args.publishers,
                                                     f"mon{qos}{r}", tmp / f"h{qos}{r}.db"))
                h = runs["history"][-1]
                print(f"  QoS {qos} round {r + 1}: bare {runs['bare'][-1]['rate']:,.0f}/s, monitor without history "
                      f"{runs['live'][-1]['rate']:,.0f}/s, monitor with SQLite history {h['rate']:,.0f}/s "
                      f"(received {h['received']}, stored {h.get('written')}, dropped {h.get('dropped')}, "
                      f"refused {h.get('rejected')})")
            b, live, m = (max(x["rate"] for x in runs[k]) for k in ("bare", "live", "history"))
            print(f"QoS {qos}: bare paho (json.loads only) {b:,.0f} msgs/s; Monitor without history {live:,.0f} "
                  f"msgs/s (ratio {live / b:.2f}); Monitor with SQLite history {m:,.0f} msgs/s; ratio {m / b:.2f}")
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
