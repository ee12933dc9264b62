"""Feeder threads of the fleet simulator: requests to every device at its rate, and how far behind they run.

Each feeder owns a share of the devices and a heap of their next request times (Poisson arrivals: the gaps
are exponential with mean ``1 / rate``). A request goes through the device agent's queue (``Agent.infer``,
the path the local HTTP API takes) and waits for its answer. ``lag`` is how late a request left compared
with its schedule: near zero while the machine keeps up, growing when it saturates (a request more than a
second late is sent at once and the schedule restarts from now, so lag does not pile up without bound).
"""
from __future__ import annotations

import heapq
import threading
import time

import numpy as np

from edgepack_runtime.agent import Busy
from edgepack_runtime.errors import EdgepackError
from edgepack_runtime.metrics import LatencyHistogram

INFER_TIMEOUT = 5.0


class Feeders:
    def __init__(self, sim, rate: float, seed: int, threads: int | None = None):
        self.sim, self.rate = sim, rate
        n = threads or max(1, min(8, len(sim.devices)))
        self._parts = [sim.devices[i::n] for i in range(n)]
        self._rngs = [np.random.default_rng([seed, 2 << 30, i]) for i in range(n)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._lag = LatencyHistogram()
        self.counters = {"sent": 0, "answered": 0, "busy": 0, "errors": 0, "while_down": 0, "rescheduled": 0}
        self._threads: list[threading.Thread] = []

    def start(self) -> "Feeders":
        if self.rate > 0:
            for i, part in enumerate(self._parts):
                t = threading.Thread(target=self._feed, args=(part, self._rngs[i]), name=f"edgepack-sim-feed-{i}",
                                     daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(INFER_TIMEOUT + 1)

    def stats(self) -> dict:
        with self._lock:
            lag = self._lag
            return {**self.counters, "lag_ms": {"p50": lag.quantile(0.5) * 1e3, "p95": lag.quantile(0.95) * 1e3,
                                                "mean": (lag.sum / lag.total * 1e3) if lag.total else 0.0}}

    def _feed(self, devices, rng: np.random.Generator) -> None:
        now = time.monotonic()
        heap = [(now + rng.exponential(1 / self.rate), i) for i in range(len(devices))]
        heapq.heapify(heap)
        while heap and not self._stop.is_set():
            due, i = heap[0]
            wait = due - time.monotonic()
            if wait > 0:
                self._stop.wait(min(wait, 0.2))
                continue
            heapq.heappop(heap)
            late = -wait
            self._one(devices[i], late)
            nxt = due + rng.exponential(1 / self.rate)
            if nxt < time.monotonic() - 1.0:          # far behind: restart this device's schedule from now
                nxt = time.monotonic()
                with self._lock:
                    self.counters["rescheduled"] += 1
            heapq.heappush(heap, (nxt, i))

    def _one(self, dev, late: float) -> None:
        agent = dev.agent
        key = "while_down"
        if agent is not None:
            inputs = self.sim.stream.draw(dev.rng, dev.drifting, time.monotonic())
            try:
                agent.infer(inputs, timeout=INFER_TIMEOUT)
                key = "answered"
            except Busy:
                key = "busy"
            except EdgepackError:
                key = "errors"
        with self._lock:
            self.counters["sent"] += agent is not None
            self.counters[key] += 1
            self._lag.add(late)
