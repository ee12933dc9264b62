"""The device agent: a long-lived service that runs one bundle for local programs and reports over MQTT.

Requests go through a bounded queue to one worker (back-pressure: ``Busy`` when full, never unbounded
memory). The worker optionally answers repeated identical inputs from an LRU cache and, for models whose
first dimension is a batch larger than one, packs single-sample requests into micro-batches. Every call
feeds the telemetry counters and the drift monitor; a reporter thread publishes both on a period.
"""
from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future

import numpy as np

from .drift import DriftMonitor
from .errors import EdgepackError, InputError
from .metrics import Telemetry


class Busy(EdgepackError):
    """The request queue is full."""
    exit_code = 9


class _Cache:
    def __init__(self, size: int):
        self.size, self.data = size, OrderedDict()

    @staticmethod
    def key(inputs: dict) -> str:
        h = hashlib.sha1()
        for name in sorted(inputs):
            a = np.asarray(inputs[name])
            h.update(f"{name}{a.dtype.str}{a.shape}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def get(self, key):
        if key in self.data:
            self.data.move_to_end(key)
            return self.data[key]
        return None

    def put(self, key, value) -> None:
        self.data[key] = value
        if len(self.data) > self.size:
            self.data.popitem(last=False)


class Agent:
    def __init__(self, runtime, *, link=None, telemetry_interval: float = 10.0, queue_size: int = 64,
                 cache_size: int = 0, max_batch: int = 1, max_wait_ms: float = 2.0, drift_window: int = 1000,
                 drift: bool = True, drift_budget: float = 0.01, drift_every: int | None = None,
                 sampler=None):
        self.rt = runtime
        self.link = link
        self.interval = telemetry_interval
        self.telemetry = Telemetry(backend=runtime.backend_name, bundle=runtime.bundle.manifest)
        self.drift = self._drift_monitor(drift_window) if drift else None
        self.cache = _Cache(cache_size) if cache_size > 0 else None
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1e3
        self.requests: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.paused = threading.Event()   # tests and maintenance: hold the worker
        self.paused.set()
        self.alerts = 0
        self.sampler = sampler               # optional RawSampler (off by default)
        self.drift_budget = drift_budget     # fraction of inference time drift observation may cost
        self._fixed_every = drift_every      # observe every N-th call; None adapts N to the budget
        self._observe_every, self._calls = drift_every or 1, 0
        self._cost_ema = self._latency_ema = None

    def _drift_monitor(self, window: int) -> DriftMonitor | None:
        rel = self.rt.bundle.manifest.get("drift_baseline")
        if not rel:
            return None
        return DriftMonitor(json.loads(self.rt.bundle.read(rel)), window_count=window)

    # lifetime ---------------------------------------------------------------------------
    def start(self) -> "Agent":
        for target, name in ((self._work, "edgepack-worker"), (self._report, "edgepack-reporter")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        if self.link is not None:
            self.link.on_command = self.on_command
            self.link.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.paused.set()
        for t in self._threads:
            t.join(5)
        if self.link is not None:
            self.publish_telemetry()
            self.link.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # inference --------------------------------------------------------------------------
    def infer(self, inputs: dict, timeout: float = 30.0) -> dict:
        """Queue one request and wait for its outputs; raises Busy, InputError or the backend's error."""
        fut: Future = Future()
        try:
            self.requests.put_nowait((inputs, fut))
        except queue.Full:
            self.telemetry.busy()
            raise Busy(f"the agent is busy ({self.requests.maxsize} requests queued)",
                       hint="retry after a short wait") from None
        return fut.result(timeout)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.requests.get(timeout=0.1)
            except queue.Empty:
                continue
            self.paused.wait()
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch and time.monotonic() < deadline:
                try:
                    batch.append(self.requests.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            self._serve(batch)

    def _serve(self, batch) -> None:
        if len(batch) > 1 and self._batchable(batch) and self._serve_batched(batch):
            return
        for inputs, fut in batch:   # one by one (also when a packed batch failed: each gets its own error)
            try:
                fut.set_result(self.run(inputs))
            except Exception as exc:
                fut.set_exception(exc)

    def run(self, inputs: dict) -> dict:
        """One instrumented call: cache, backend, telemetry, drift."""
        key = self.cache.key(inputs) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)
            self.telemetry.cache(hit is not None)
            if hit is not None:
                return hit
        t0 = time.perf_counter()
        try:
            out = self.rt.run(inputs)
        except InputError:
            self.telemetry.error("InputError", input_error=True)
            raise
        except Exception as exc:
            self.telemetry.error(type(exc).__name__)
            raise
        self.account(inputs, out, time.perf_counter() - t0)
        if key is not None:
            self.cache.put(key, out)
        return out

    def account(self, inputs: dict, outputs: dict, latency: float) -> None:
        """The per-call instrumentation: latency histogram, then (sampled) drift observation."""
        self.telemetry.record(latency)
        self._calls += 1
        if self.drift is not None and self._calls % self._observe_every == 0:
            self._observe(inputs, outputs, latency)
        if self.sampler is not None:
            self.sampler.offer(inputs, outputs)

    def _observe(self, inputs: dict, outputs: dict, latency: float) -> None:
        """Feed the drift monitor, observing one call in N so that its cost stays within the budget."""
        t0 = time.perf_counter()
        self.drift.observe(inputs, outputs)
        cost = time.perf_counter() - t0
        ema = lambda old, new: new if old is None else 0.9 * old + 0.1 * new  # noqa: E731
        self._cost_ema, self._latency_ema = ema(self._cost_ema, cost), ema(self._latency_ema, latency)
        if self._fixed_every is None:
            self._observe_every = max(1, int(np.ceil(self._cost_ema / (self.drift_budget * self._latency_ema))))

    def _batchable(self, batch) -> bool:
        specs = self.rt.inputs
        return all(s["shape"] and s["shape"][0] >= len(batch) for s in specs) and all(
            isinstance(inp, dict) and all(np.shape(inp.get(s["name"]))[:1] == (1,) for s in specs)
            for inp, _ in batch)

    def _serve_batched(self, batch) -> bool:
        """Stack single-sample requests into the model's batch dimension (zero padded), split the outputs."""
        n = len(batch)
        try:
            feeds = {}
            for s in self.rt.inputs:
                stacked = np.concatenate([np.asarray(inp[s["name"]], dtype=s["dtype"]) for inp, _ in batch])
                pad = np.zeros((s["shape"][0] - n,) + stacked.shape[1:], stacked.dtype)
                feeds[s["name"]] = np.concatenate([stacked, pad])
            out = self.run(feeds)
        except Exception:
            return False
        for i, (_, fut) in enumerate(batch):
            fut.set_result({k: v[i:i + 1] for k, v in out.items()})
        return True

    # reporting --------------------------------------------------------------------------
    def _report(self) -> None:
        next_t = time.monotonic() + self.interval
        while not self._stop.wait(0.05):
            if self.drift is not None and self.drift.window_full():
                self.publish_drift()
            if time.monotonic() >= next_t:
                self.publish_telemetry()
                next_t = time.monotonic() + self.interval

    def publish_telemetry(self) -> dict:
        snap = self.telemetry.snapshot()
        snap["drift_observe_every"] = self._observe_every
        if self.sampler is not None:
            snap["sampling"] = self.sampler.stats()
        if self.link is not None:
            snap["outbox"] = self.link.outbox.stats()
            snap["link"] = dict(self.link.counters, last_error=self.link.last_error)
            self.link.publish("telemetry", {"telemetry": snap})
        return snap

    def publish_drift(self) -> dict:
        summary = self.drift.summary()
        if self.link is not None:
            self.link.publish("drift", {"drift": summary})
            if summary["alerts"]:
                self.link.publish("events", {"type": "drift_alert", "alerts": summary["alerts"]})
        self.alerts += len(summary["alerts"])
        return summary

    def on_command(self, verb: str, body: dict) -> None:
        if verb == "ping":
            self.link.publish("events", {"type": "pong", "echo": body.get("echo")})
        elif verb == "telemetry":
            self.publish_telemetry()
        elif verb == "config" and isinstance(body.get("telemetry_interval"), (int, float)) \
                and body["telemetry_interval"] > 0:
            self.interval = float(body["telemetry_interval"])
            self.link.publish("events", {"type": "config_applied", "telemetry_interval": self.interval})
        else:
            self.link.publish("events", {"type": "unknown_command", "verb": verb})
