"""``edgepack fleet simulate``: N real device agents in one process, for demos and load tests.

Every simulated device is the real thing: the device runtime's ``Agent`` (queue, worker, telemetry, drift),
its own ``MqttLink`` (own client connection, birth and last will, QoS 1) and its own on-disk outbox in a
temporary folder, serving real inference from the bundle. What is shared is the loaded model: a few Runtimes
(``runtimes``, default one per CPU) serve all devices (``simdevice.ModelPool``). Feeder threads send each
device requests at ``rate`` per second (Poisson arrivals, ``simfeed``), drawn from real data (``inputs``, an
.npz), else from the bundle's drift baseline, else from its samples (``siminputs``).

Faults, all seeded (``seed``) and off by default:
- ``drift``: a share ``drift_share`` of the devices send ``x * drift_scale + drift * std(x)`` from
  ``drift_at`` seconds on (their drift windows then alert);
- ``latency_spikes``: that share of calls sleeps ``spike_ms`` (0.5..1.5x) first, inside the latency the agent
  measures (``simdevice.DeviceRuntime``: a simulator hook, the agent is unchanged);
- ``crash_rate``: crashes per device per minute: the agent stops without a goodbye (its connection just
  ends, the broker publishes the retained last will ``offline``), stays down ``crash_downtime`` seconds, then
  restarts with the same outbox (what was queued is sent after the restart);
- ``network_cuts``: cuts per device per minute, ``cut_seconds`` long: the device's TCP connection drops and
  reconnects are refused (``simnet.FaultNet``); it keeps serving, and store-and-forward fills the gap.
Simulated latencies are this machine's (shared by every device), not the devices'.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ..errors import EdgepackError
from .simdevice import ModelPool, SimAgent, Spikes
from .simfeed import Feeders
from .siminputs import input_stream
from .simnet import FaultNet


@dataclass
class SimSettings:
    """What ``fleet simulate`` takes; see the module docstring for the faults' meaning."""
    devices: int
    bundle: Path
    broker: str
    fleet: str = "sim"
    duration: float | None = 60.0          # None: until stop()
    rate: float = 2.0                      # requests per second per device
    telemetry_interval: float = 5.0
    drift_window: float = 10.0             # seconds per drift window
    drift: float = 0.0
    drift_scale: float = 1.0
    drift_at: float = 0.0
    drift_share: float = 1.0
    latency_spikes: float = 0.0
    spike_ms: float = 100.0
    crash_rate: float = 0.0
    crash_downtime: float = 5.0
    network_cuts: float = 0.0
    cut_seconds: float = 3.0
    seed: int = 0
    inputs: Path | None = None             # .npz of real inputs (else the drift baseline's bins, see siminputs)
    relay: bool | None = None              # the fault relay (None: when crash_rate or network_cuts is set)
    runtimes: int = 0                      # 0: one per CPU (at most one per device)
    backend: str | None = None
    prefix: str = "sim-"
    workdir: Path | None = None
    power_watts: float | None = None
    cost_per_hour: float | None = None
    username: str | None = None
    password: str | None = None
    passwords: dict = field(default_factory=dict)   # device id -> password (user name = device id)
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def check(self) -> None:
        """Refuse impossible settings with what to change."""
        rules = [("devices", 1 <= self.devices <= 100_000, "in [1, 100000]"), ("rate", 0 <= self.rate <= 10_000,
                 "in [0, 10000] requests/s"), ("telemetry_interval", 0.1 <= self.telemetry_interval <= 86400,
                 "in [0.1, 86400] s"), ("drift_window", 1 <= self.drift_window, "at least 1 s"),
                 ("drift_share", 0 <= self.drift_share <= 1, "in [0, 1]"),
                 ("latency_spikes", 0 <= self.latency_spikes <= 1, "a share in [0, 1]"),
                 ("spike_ms", 0 <= self.spike_ms <= 60_000, "in [0, 60000] ms"),
                 ("crash_rate", 0 <= self.crash_rate <= 60, "in [0, 60] per device per minute"),
                 ("network_cuts", 0 <= self.network_cuts <= 60, "in [0, 60] per device per minute"),
                 ("duration", self.duration is None or self.duration > 0, "positive")]
        for name, ok, what in rules:
            if not ok:
                raise EdgepackError(f"simulate: {name} must be {what}, not {getattr(self, name)!r}")
        url = urlparse(self.broker)
        if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
            raise EdgepackError(f"simulate: broker must look like mqtt://HOST:PORT, not {self.broker!r}")


class SimDevice:
    """One simulated device: id, RNG, state (``up``, ``crashed``, ``cut``) and its current Agent."""

    def __init__(self, sim: "Simulator", index: int):
        s = sim.settings
        self.index, self.id = index, f"{s.prefix}{index + 1:04d}"
        self.rng = np.random.default_rng([s.seed, index])
        self.spikes = Spikes(s.latency_spikes, s.spike_ms, np.random.default_rng([s.seed, index, 1]))
        self.drifting = index in sim.drifting
        self.outbox = sim.workdir / f"{self.id}.outbox.db"
        self.port = sim.net.add(self.id) if sim.net is not None else sim.port
        self.state, self.until, self.agent = "down", 0.0, None
        self.lock = threading.Lock()


class Simulator:
    """``Simulator(SimSettings(...)).run()``, or ``start()`` ... ``stop()`` around your own checks."""

    def __init__(self, settings: SimSettings):
        settings.check()
        self.settings = s = settings
        url = urlparse(s.broker)
        self.host, self.port, self.tls = url.hostname, url.port or (8883 if url.scheme == "mqtts" else 1883), \
            url.scheme == "mqtts"
        self._own_workdir = s.workdir is None
        self.workdir = Path(s.workdir or tempfile.mkdtemp(prefix="edgepack-sim-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.net = self.pool = self.feeders = None
        self.devices: list[SimDevice] = []
        self.counters = {"crashes": 0, "restarts": 0, "cuts": 0, "restores": 0}
        self._stop = threading.Event()
        self._faults: threading.Thread | None = None
        self.started = None

    # lifetime ---------------------------------------------------------------------------
    def start(self) -> "Simulator":
        """Load the model, connect every device, start the feeders and the fault schedule."""
        s = self.settings
        from edgepack_runtime.signing import open_verified
        bundle = open_verified(s.bundle, ())[0]
        self.pool = ModelPool(bundle, s.runtimes or min(s.devices, os.cpu_count() or 1), backend=s.backend)
        self.stream = input_stream(bundle, s.inputs, seed=s.seed, shift=s.drift, scale=s.drift_scale,
                                   at=time.monotonic() + s.drift_at)
        if s.relay or (s.relay is None and (s.crash_rate or s.network_cuts)):
            self.net = FaultNet(self.host, self.port)
        self.started = time.monotonic()
        drifts = s.drift != 0 or s.drift_scale != 1        # exactly round(share x N) devices, chosen by the seed
        order = np.random.default_rng([s.seed, 3 << 30]).permutation(s.devices)
        self.drifting = set(order[:round(s.drift_share * s.devices)].tolist()) if drifts else set()
        self.devices = [SimDevice(self, i) for i in range(s.devices)]
        self._by_id = {d.id: d for d in self.devices}
        for dev in self.devices:
            self._boot(dev)
        self.feeders = Feeders(self, s.rate, s.seed).start()
        if self.net is not None:                # also brings back devices crashed or cut by hand
            self._faults = threading.Thread(target=self._fault_loop, name="edgepack-sim-faults", daemon=True)
            self._faults.start()
        return self

    def run(self, progress=None) -> dict:
        """Start, run for ``duration`` seconds (``progress(stats)`` about once a second), stop; the final stats."""
        self.start()
        try:
            end = None if self.settings.duration is None else self.started + self.settings.duration
            while not self._stop.wait(1.0 if end is None else max(0.0, min(1.0, end - time.monotonic()))):
                if progress is not None:
                    progress(self.stats())
                if end is not None and time.monotonic() >= end:
                    break
        finally:
            self.stop()
        return self.stats()

    def stop(self) -> None:
        """Stop feeding, then every agent cleanly (last telemetry, ``offline``); remove the temporary folder."""
        self._stop.set()
        if self.feeders is not None:
            self.feeders.stop()
        if self._faults is not None:
            self._faults.join(10)
        if self.net is not None:
            for dev in self.devices:
                if self.net.is_cut(dev.id):
                    self.net.restore(dev.id)
        _parallel([d for d in self.devices if d.agent is not None], self._halt)
        if self.net is not None:
            self.net.stop()
        if self.pool is not None:
            self.pool.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # one device -------------------------------------------------------------------------
    def _boot(self, dev: SimDevice) -> None:
        from edgepack_runtime.link import MqttLink
        from edgepack_runtime.outbox import Outbox
        s = self.settings
        user, password = (dev.id, s.passwords[dev.id]) if dev.id in s.passwords else (s.username, s.password)
        tls = {"ca": s.ca, "cert": s.cert, "key": s.key} if self.tls else False
        link = MqttLink(host="127.0.0.1" if self.net else self.host, port=dev.port, device_id=dev.id,
                        fleet=s.fleet, outbox=Outbox(dev.outbox), username=user, password=password, tls=tls,
                        backoff_base=0.2, backoff_cap=2.0)
        agent = SimAgent(self.pool.runtime_for(dev.index, dev.spikes), sink=link,
                         telemetry_interval=s.telemetry_interval, drift_window_seconds=s.drift_window,
                         drift_every=1, power_watts=s.power_watts, cost_per_hour=s.cost_per_hour)
        agent.spikes = dev.spikes
        dev.agent, dev.state = agent.start(), "up"

    def _halt(self, dev: SimDevice) -> None:
        with dev.lock:
            agent, dev.agent, dev.state = dev.agent, None, "down"
        if agent is not None:
            agent.stop()
            _fail_queued(agent, "the simulated device stopped")
            agent.sink.outbox.close()

    def crash(self, device_id: str, downtime: float | None = None) -> None:
        """Stop ``device_id`` without a goodbye: its connection ends, the broker sends its last will."""
        dev = self.device(device_id)
        if self.net is None:
            raise EdgepackError("crashes need the fault relay: set crash_rate > 0 or relay=True")
        with dev.lock:
            agent, dev.agent = dev.agent, None
            if agent is None:
                return
            dev.state = "crashing"
        self.net.cut(dev.id)                   # the connection just ends: no DISCONNECT, no offline from the device
        link, agent.sink = agent.sink, None     # the agent's threads stop with no last telemetry (a crash)
        agent.stop()
        _fail_queued(agent, "the simulated device crashed")
        link.stop()
        link.outbox.close()
        self.counters["crashes"] += 1
        dev.until, dev.state = time.monotonic() + (downtime or self.settings.crash_downtime), "crashed"

    def restart(self, device_id: str) -> None:
        """Boot a crashed device again (same outbox: what it had queued goes out now)."""
        dev = self.device(device_id)
        self.net.restore(dev.id)
        with dev.lock:
            self._boot(dev)
        self.counters["restarts"] += 1

    def cut(self, device_id: str, seconds: float | None = None) -> None:
        """Cut ``device_id``'s network for ``seconds`` (the fault loop, or ``restore``, reconnects it)."""
        dev = self.device(device_id)
        if self.net is None:
            raise EdgepackError("network cuts need the fault relay: set network_cuts > 0 or relay=True")
        if dev.state != "up":
            raise EdgepackError(f"simulated device {device_id} is {dev.state}: only a running device can be cut")
        self.net.cut(dev.id)
        dev.until, dev.state = time.monotonic() + (seconds or self.settings.cut_seconds), "cut"
        self.counters["cuts"] += 1

    def restore(self, device_id: str) -> None:
        dev = self.device(device_id)
        self.net.restore(dev.id)
        dev.state = "up"
        self.counters["restores"] += 1

    def device(self, device_id: str) -> SimDevice:
        try:
            return self._by_id[device_id]
        except (AttributeError, KeyError):
            raise EdgepackError(f"no simulated device {device_id!r}") from None

    # faults ----------------------------------------------------------------------------
    def _fault_loop(self) -> None:
        s, tick = self.settings, 0.2
        rng = np.random.default_rng([s.seed, 1 << 30])
        while not self._stop.wait(tick):
            now = time.monotonic()
            for dev in self.devices:
                if dev.state == "up":
                    if rng.random() < s.crash_rate / 60 * tick:
                        self.crash(dev.id)
                    elif rng.random() < s.network_cuts / 60 * tick:
                        self.cut(dev.id)
                elif dev.state == "crashed" and now >= dev.until:
                    self.restart(dev.id)
                elif dev.state == "cut" and now >= dev.until:
                    self.restore(dev.id)
                if self._stop.is_set():
                    return

    # figures ---------------------------------------------------------------------------
    def stats(self) -> dict:
        """Devices by state, requests and answers, feeder lag, faults injected."""
        states = {}
        for dev in self.devices:
            states[dev.state] = states.get(dev.state, 0) + 1
        links = [d.agent.sink.status() for d in self.devices if d.agent is not None and d.agent.sink is not None]
        return {"elapsed_s": round(time.monotonic() - self.started, 2) if self.started else 0.0,
                "devices": len(self.devices), "states": states,
                "connected": sum(1 for st in links if st["connected"]),
                "outbox_queued": sum((st.get("outbox") or {}).get("queued", 0) for st in links),
                **(self.feeders.stats() if self.feeders else {}), **self.counters,
                "spikes": sum(d.spikes.injected for d in self.devices),
                "drifting": sum(d.drifting for d in self.devices),
                "inputs": getattr(getattr(self, "stream", None), "source", None),
                "net": dict(self.net.counters) if self.net else None}


def _fail_queued(agent, why: str) -> None:
    """Answer the requests a stopped agent's worker will never take (their callers would wait for a timeout)."""
    import queue

    from edgepack_runtime.errors import BackendError
    while True:
        try:
            _, fut = agent.requests.get_nowait()
        except queue.Empty:
            return
        if not fut.done():
            fut.set_exception(BackendError(why))


def _parallel(items, fn, workers: int = 32) -> None:
    """``fn(item)`` for every item, ``workers`` at a time (stopping 200 agents one by one takes a minute)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        list(pool.map(fn, items))


def simulate(settings: SimSettings, progress=None) -> dict:
    """Run a simulated fleet (see the module docstring); returns the final ``Simulator.stats()``."""
    return Simulator(settings).run(progress)
