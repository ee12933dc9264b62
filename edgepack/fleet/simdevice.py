"""The pieces of one simulated device: a share of the loaded model, the latency-spike hook, its inputs.

``ModelPool`` loads the bundle a few times (``k`` Runtimes, not one per device: that is what keeps a
simulated fleet large) and hands each device one of them. A TFLite interpreter must not be called from two
threads at once, so calls to a pooled Runtime of that kind take its lock; onnxruntime sessions are safe to
share and are called without one. ``DeviceRuntime`` is what a device's (real, unchanged) ``Agent`` holds as
its Runtime: the pooled one plus the **latency-spike hook**, a sleep injected before a share of calls, inside
the time the agent measures, so spikes reach telemetry the way a slow device's would. ``SimAgent`` wraps any
Runtime an over-the-air update swaps in the same way. ``InputStream`` draws a device's requests from the
bundle's samples, shifted and scaled from a given time on when the device drifts.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from edgepack_runtime.agent import Agent
from edgepack_runtime.runtime import Runtime

THREAD_SAFE = {"onnxruntime", "qnn"}     # backends whose sessions may run calls from several threads at once


class Spikes:
    """A share ``p`` of calls sleeps ``ms`` (x a uniform 0.5..1.5) first; ``injected`` counts them."""

    def __init__(self, p: float, ms: float, rng: np.random.Generator):
        self.p, self.seconds, self.rng, self.injected = p, ms / 1e3, rng, 0

    def maybe_sleep(self) -> None:
        if self.p > 0 and self.rng.random() < self.p:
            self.injected += 1
            time.sleep(self.seconds * self.rng.uniform(0.5, 1.5))


class DeviceRuntime:
    """A Runtime seen by one device: ``run`` = spike hook, then the (maybe shared, maybe locked) Runtime."""

    def __init__(self, rt: Runtime, lock: threading.Lock | None, spikes: Spikes | None, *, owned: bool):
        self.rt, self.lock, self.spikes, self.owned = rt, lock, spikes, owned

    backend_name = property(lambda self: self.rt.backend_name)
    backend_detail = property(lambda self: self.rt.backend_detail)
    bundle = property(lambda self: self.rt.bundle)
    target = property(lambda self: self.rt.target)
    inputs = property(lambda self: self.rt.inputs)
    outputs = property(lambda self: self.rt.outputs)

    def run(self, inputs) -> dict:
        if self.spikes is not None:
            self.spikes.maybe_sleep()          # outside the lock: a spike delays this device only
        if self.lock is None:
            return self.rt.run(inputs)
        with self.lock:
            return self.rt.run(inputs)

    def close(self) -> None:
        """A pooled Runtime stays open for the other devices (the pool closes it); one of this device's own
        (swapped in by an update) is closed."""
        if self.owned:
            self.rt.close()


def own_runtime(rt: Runtime, spikes: Spikes | None) -> DeviceRuntime:
    """A Runtime of one device alone (after an update), with its spike hook; closed with the device's use."""
    return DeviceRuntime(rt, None if rt.backend_name in THREAD_SAFE else threading.Lock(), spikes, owned=True)


class SimAgent(Agent):
    """The real Agent; a Runtime swapped in by an update gets the device's spike hook too (its own lock)."""

    spikes: Spikes | None = None

    def swap_runtime(self, runtime) -> None:
        super().swap_runtime(runtime if isinstance(runtime, DeviceRuntime) else own_runtime(runtime, self.spikes))


class ModelPool:
    """``k`` Runtimes of one bundle, each with its lock (None for thread-safe backends)."""

    def __init__(self, bundle, k: int, *, backend: str | None = None, threads: int | None = None):
        self.runtimes = [Runtime.open(bundle, backend, num_threads=threads) for _ in range(max(1, k))]
        self.locks = [None if rt.backend_name in THREAD_SAFE else threading.Lock() for rt in self.runtimes]
        self.bundle = self.runtimes[0].bundle

    def runtime_for(self, index: int, spikes: Spikes | None) -> DeviceRuntime:
        i = index % len(self.runtimes)
        return DeviceRuntime(self.runtimes[i], self.locks[i], spikes, owned=False)

    def close(self) -> None:
        for rt in self.runtimes:
            rt.close()
