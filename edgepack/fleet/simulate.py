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
With ``ota`` every device also has its own A/B state folder and takes updates (``edgepack flash``,
``rollback``, rollouts) like a real one: health check, hot swap; an updated device runs its own Runtime.
Simulated latencies are this machine's (shared by every device), not the devices'.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ..errors import EdgepackError
from .simdevice import ModelPool, SimAgent, Spikes, own_runtime
from .simfeed import Feeders
from .siminputs import input_stream
from .simfaults import Faults, fail_queued
from .simnet import FaultNet
from .simsettings import SimSettings

__all__ = ["SimSettings", "Simulator", "simulate"]


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


class Simulator(Faults):
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
        bundle = open_verified(s.bundle, s.trust_keys)[0]
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
        updater, runtime = self._ota(dev) if s.ota else (None, self.pool.runtime_for(dev.index, dev.spikes))
        agent = SimAgent(runtime, sink=link, telemetry_interval=s.telemetry_interval,
                         drift_window_seconds=s.drift_window, drift_every=1, power_watts=s.power_watts,
                         cost_per_hour=s.cost_per_hour)
        agent.spikes = dev.spikes
        if updater is not None:
            from edgepack_runtime.ota.agentota import attach
            attach(agent, updater, self._ota_conf(dev))
        dev.agent, dev.state = agent.start(), "up"

    def _ota_conf(self, dev: SimDevice) -> dict:
        s = self.settings
        return {"state_dir": str(self.workdir / f"{dev.id}.state"), "bundle": str(s.bundle), "backend": s.backend,
                "trust_keys": list(s.trust_keys), "profile": s.profile, "health_budget_ms": None, "threads": None}

    def _ota(self, dev: SimDevice):
        """The device's Updater and what it serves: the pooled Runtime while its active slot holds the pool's
        bundle, else (after an update) its own."""
        from edgepack_runtime.ota.agentota import open_updater
        from edgepack_runtime.signing import open_verified
        updater, path = open_updater(self._ota_conf(dev))     # the first boot installs the bundle (health check)
        bundle = open_verified(path, self.settings.trust_keys)[0]
        if bundle.manifest_bytes == self.pool.bundle.manifest_bytes:
            return updater, self.pool.runtime_for(dev.index, dev.spikes)
        from edgepack_runtime.runtime import Runtime
        return updater, own_runtime(Runtime.open(bundle, self.settings.backend), dev.spikes)

    def _halt(self, dev: SimDevice) -> None:
        with dev.lock:
            agent, dev.agent, dev.state = dev.agent, None, "down"
        if agent is not None:
            agent.stop()
            fail_queued(agent, "the simulated device stopped")
            agent.sink.outbox.close()

    def device(self, device_id: str) -> SimDevice:
        try:
            return self._by_id[device_id]
        except (AttributeError, KeyError):
            raise EdgepackError(f"no simulated device {device_id!r}") from None

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


def _parallel(items, fn, workers: int = 32) -> None:
    """``fn(item)`` for every item, ``workers`` at a time (stopping 200 agents one by one takes a minute)."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items)))) as pool:
        list(pool.map(fn, items))


def simulate(settings: SimSettings, progress=None) -> dict:
    """Run a simulated fleet (see the module docstring); returns the final ``Simulator.stats()``."""
    return Simulator(settings).run(progress)
