"""The device agent: a long-lived service that runs one bundle for local programs and reports to a sink.

Requests go through a bounded queue to one worker (back-pressure: ``Busy`` when full, never unbounded
memory). The worker optionally answers repeated identical inputs from an LRU cache and, for models whose
first dimension is a batch larger than one (or dynamic), packs single-sample requests into micro-batches.
Every backend call feeds the telemetry counters and (one call in N, within a time budget) the drift
monitor; a reporter thread publishes both to the sink (``MqttLink`` or any ``sink.Sink``). Host commands
(``cmd/<verb>``) run through one table, ``agentcmds.COMMANDS`` (verb -> argument schema -> handler).

    agent = Agent(Runtime.open("m.edgepack"), sink=link, telemetry_interval=10).start()
    outputs = agent.infer({"x": x})      # queued; agent.run(...) is the same call without the queue
    agent.stop()
"""
from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from .agentcmds import COMMANDS
from .cache import OutputCache
from .cost import cost_fields
from .drift import DriftMonitor, Thresholds
from .errors import BackendError, EdgepackError, InputError
from .metrics import Telemetry
from .watchdog import Supervisor


class Busy(EdgepackError):
    """The request queue is full."""
    exit_code = 9


class Agent:
    def __init__(self, runtime, *, sink=None, telemetry_interval: float = 10.0, queue_size: int = 64,
                 cache_size: int = 0, max_batch: int = 1, max_wait_ms: float = 2.0, drift: bool = True,
                 drift_window: int = 1000, drift_window_seconds: float | None = None,
                 drift_thresholds: Thresholds | None = None, drift_budget: float = 0.01,
                 drift_every: int | None = None, sampler=None, commands=None, restart_base: float = 0.5,
                 restart_cap: float = 30.0, refuse_nonfinite: bool = False, power_watts: float | None = None,
                 cost_per_hour: float | None = None):
        self.rt = runtime
        self.power_watts, self.cost_per_hour = power_watts, cost_per_hour   # telemetry: energy/cost per 1k
        self.updater = None                  # an ota.Updater when the agent runs from a state folder
        self.shadow = None                   # a shadow.Shadow: a candidate bundle run on sampled calls (shadowinstall)
        self._leases: dict[int, int] = {}    # id(runtime) -> backend calls in flight (hot swap waits for them)
        self._retired: dict[int, object] = {}
        self._swap_lock = threading.Lock()
        self._started = False
        self.commands = COMMANDS if commands is None else commands   # verb -> schema -> handler
        self.sink = sink
        self.interval = telemetry_interval
        self.telemetry = Telemetry(backend=runtime.backend_name, bundle=runtime.bundle.manifest,
                                   bundle_sha256=hashlib.sha256(runtime.bundle.manifest_bytes).hexdigest())
        self._drift_args = (drift_window, drift_window_seconds, drift_thresholds) if drift else None
        self.drift = self._drift_monitor(*self._drift_args) if drift else None
        self.cache = OutputCache(cache_size) if cache_size > 0 else None
        self.max_batch, self.max_wait = max(1, max_batch), max_wait_ms / 1e3
        self.requests: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        # every background thread is supervised: restarted with backoff when it fails, listed in health()
        self.supervisor = Supervisor(backoff_base=restart_base, backoff_cap=restart_cap)
        self.paused = threading.Event()   # tests and maintenance: hold the worker
        self.paused.set()
        self.alerts = 0
        self.sampler = sampler               # optional RawSampler (off by default)
        self.refuse_nonfinite = refuse_nonfinite   # NaN/Inf inputs: counted always, refused when set
        self.drift_budget = drift_budget     # fraction of inference time drift observation may cost
        self._fixed_every = drift_every      # observe every N-th call; None adapts N to the budget
        self._observe_every, self._calls = drift_every or 1, 0
        self._cost_ema = self._latency_ema = None

    def _drift_monitor(self, window: int, seconds: float | None, thresholds) -> DriftMonitor | None:
        rel = self.rt.bundle.manifest.get("drift_baseline")
        if not rel:
            return None
        return DriftMonitor(json.loads(self.rt.bundle.read(rel)), window_count=window, window_seconds=seconds,
                            thresholds=thresholds)

    # lifetime ---------------------------------------------------------------------------
    def start(self) -> "Agent":
        self._started = True
        self.supervisor.spawn("edgepack-worker", self._work, self._stop)
        self.supervisor.spawn("edgepack-telemetry", self._telemetry_loop, self._stop)
        if self.drift is not None:
            self.supervisor.spawn("edgepack-drift", self._drift_loop, self._stop)
        if self.sink is not None:
            if hasattr(self.sink, "on_command"):
                self.sink.on_command = self.on_command
            if hasattr(self.sink, "start"):
                self.sink.start()
        return self

    def stop(self) -> None:
        """Finish the queued requests' worker, publish a last telemetry period, then stop the sink (it flushes)."""
        self._stop.set()
        self.paused.set()
        self.supervisor.join(5)
        if self.sink is not None:
            self.publish_telemetry()
            if hasattr(self.sink, "stop"):
                self.sink.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # inference --------------------------------------------------------------------------
    def infer(self, inputs: dict, timeout: float = 30.0) -> dict:
        """Queue one request and wait for its outputs; raises Busy, InputError or the backend's error."""
        self._finite(inputs)
        fut: Future = Future()
        try:
            self.requests.put_nowait((inputs, fut))
        except queue.Full:
            self.telemetry.busy()
            raise Busy(f"the agent is busy ({self.requests.maxsize} requests queued)",
                       hint="retry after a short wait") from None
        try:
            return fut.result(timeout)
        except FutureTimeout:
            raise BackendError(f"inference did not finish within {timeout:g} s",
                               hint="the model may be too slow for this device; check /v1/metrics") from None

    def run(self, inputs: dict) -> dict:
        """One instrumented call without the queue: cache, backend, telemetry, drift."""
        self._finite(inputs)
        key, hit = self._lookup(inputs)
        return hit if hit is not None else self._compute(inputs, key)

    def _finite(self, inputs) -> None:
        """Count a request whose float inputs hold NaN or Inf; refuse it (InputError) if ``refuse_nonfinite``."""
        if not isinstance(inputs, dict):
            return
        for name, value in inputs.items():
            try:
                array = np.asarray(value)
                bad = int(array.size - np.count_nonzero(np.isfinite(array))) if array.dtype.kind in "fc" else 0
            except (TypeError, ValueError):       # ragged or odd: the runtime's own check will say what is wrong
                continue
            if bad:
                self.telemetry.nonfinite()
                if self.refuse_nonfinite:
                    self.telemetry.error("NonFiniteInput", input_error=True)
                    raise InputError(f"input {name!r} holds {bad} NaN/Inf value(s); this agent refuses them",
                                     hint="send finite numbers, or run the agent without refuse_nonfinite")
                return

    def _work(self) -> None:
        while not self._stop.is_set():
            self.supervisor.beat()
            try:
                first = self.requests.get(timeout=0.5)     # stop() is seen within half a second
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
            try:
                self._serve(batch)
            except BaseException as exc:          # the worker is restarted; its requests get the error, not a hang
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc if isinstance(exc, Exception) else BackendError(f"worker failed: {exc}"))
                raise

    def _serve(self, batch) -> None:
        self.telemetry.served(len(batch))
        todo = []
        for inputs, fut in batch:
            key, hit = self._lookup(inputs)
            if hit is not None:
                fut.set_result(hit)
            else:
                todo.append((inputs, fut, key))
        if len(todo) > 1 and self._batchable(todo) and self._serve_batched(todo):
            return
        for inputs, fut, key in todo:   # one by one (also when a packed batch failed: each gets its own error)
            try:
                fut.set_result(self._compute(inputs, key))
            except Exception as exc:
                fut.set_exception(exc)

    def _lookup(self, inputs: dict):
        if self.cache is None:
            return None, None
        key = OutputCache.key(inputs)
        hit = self.cache.get(key)
        self.telemetry.cache(hit is not None)
        return key, hit

    def _compute(self, inputs: dict, key) -> dict:
        t0 = time.perf_counter()
        rt = self._lease()
        try:
            out = rt.run(inputs)
        except InputError:
            self.telemetry.error("InputError", input_error=True)
            raise
        except Exception as exc:
            self.telemetry.error(type(exc).__name__)
            raise
        finally:
            self._release(rt)
        self.account(inputs, out, time.perf_counter() - t0)
        if key is not None and rt is self.rt:            # never cache an answer of a model swapped out meanwhile
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
        shadow = self.shadow
        if shadow is not None:                        # never blocks: a full shadow queue drops the sample
            shadow.offer(inputs, outputs, latency)

    def _observe(self, inputs: dict, outputs: dict, latency: float) -> None:
        """Feed the drift monitor, observing one call in N so that its cost stays within the budget."""
        drift = self.drift
        if drift is None:                             # swapped for a bundle without a drift baseline
            return
        t0 = time.perf_counter()
        drift.observe(inputs, outputs)
        cost = time.perf_counter() - t0
        ema = lambda old, new: new if old is None else 0.9 * old + 0.1 * new  # noqa: E731
        self._cost_ema, self._latency_ema = ema(self._cost_ema, cost), ema(self._latency_ema, latency)
        if self._fixed_every is None:
            self._observe_every = max(1, int(np.ceil(self._cost_ema / (self.drift_budget * self._latency_ema))))

    # micro-batching ---------------------------------------------------------------------
    def _batchable(self, todo) -> bool:
        """Every input has a batch dimension (dynamic, or fixed and large enough) and every request one row."""
        specs, n = self.rt.inputs, len(todo)
        return all(s["shape"] and (s["shape"][0] == -1 or s["shape"][0] >= n) for s in specs) and all(
            isinstance(inp, dict) and all(np.shape(inp.get(s["name"]))[:1] == (1,) for s in specs)
            for inp, _, _ in todo)

    def _serve_batched(self, todo) -> bool:
        """Stack single-row requests into the batch dimension (zero rows pad a fixed batch), split the outputs.

        Telemetry counts one backend call; drift observes the real rows only, never the padding."""
        n = len(todo)
        try:
            rows, feeds = {}, {}
            for s in self.rt.inputs:
                rows[s["name"]] = np.concatenate([np.asarray(inp[s["name"]], dtype=s["dtype"]) for inp, _, _ in todo])
                pad = max(0, s["shape"][0] - n)
                feeds[s["name"]] = np.concatenate([rows[s["name"]], np.zeros((pad,) + rows[s["name"]].shape[1:],
                                                                             rows[s["name"]].dtype)])
            t0 = time.perf_counter()
            rt = self._lease()
            try:
                out = rt.run(feeds)
            finally:
                self._release(rt)
            latency = time.perf_counter() - t0
        except Exception:
            return False
        self.account(rows, {k: v[:n] for k, v in out.items()}, latency)
        for i, (_, fut, key) in enumerate(todo):
            one = {k: v[i:i + 1] for k, v in out.items()}
            if key is not None:
                self.cache.put(key, one)
            fut.set_result(one)
        return True

    # hot swap (OTA) ----------------------------------------------------------------------
    def _lease(self):
        """The current Runtime, counted as in use until ``_release``: a swap closes it only when unused."""
        with self._swap_lock:
            rt = self.rt
            self._leases[id(rt)] = self._leases.get(id(rt), 0) + 1
            return rt

    def _release(self, rt) -> None:
        with self._swap_lock:
            left = self._leases[id(rt)] = self._leases[id(rt)] - 1
            done = left == 0 and self._retired.pop(id(rt), None) is not None
            if left == 0:
                del self._leases[id(rt)]
        if done:
            rt.close()

    def swap_runtime(self, runtime) -> None:
        """Serve ``runtime`` from now on. Calls in flight finish on the old Runtime, which is closed after the
        last of them; the output cache is emptied and telemetry and drift follow the new bundle."""
        m = runtime.bundle.manifest
        with self._swap_lock:
            old, self.rt = self.rt, runtime
            self.telemetry.static.update(backend=runtime.backend_name, model=m["model"]["name"],
                                         model_version=m["model"]["version"], bundle_created=m.get("created"),
                                         bundle_sha256=hashlib.sha256(runtime.bundle.manifest_bytes).hexdigest())
            if self.cache is not None:
                self.cache = OutputCache(self.cache.size)
            if self._drift_args is not None:            # the new bundle's baseline (or none)
                self.drift = self._drift_monitor(*self._drift_args)
                if self.drift is not None and "edgepack-drift" not in self.supervisor.status() and self._started:
                    self.supervisor.spawn("edgepack-drift", self._drift_loop, self._stop)
            close_now = old is not runtime and not self._leases.get(id(old))
            if old is not runtime and not close_now:
                self._retired[id(old)] = old
        if close_now:
            old.close()

    # reporting --------------------------------------------------------------------------
    def _telemetry_loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(min(1.0, max(0.01, self.interval - (time.monotonic() - last)))):
            self.supervisor.beat()            # wakes when a period is due, or each second (cmd/config may shorten it)
            if time.monotonic() - last >= self.interval:     # read each time: cmd/config changes it
                last = time.monotonic()                      # first: a failing period is not retried at once
                self.publish_telemetry()

    def _drift_loop(self) -> None:
        while not self._stop.wait(0.25):
            self.supervisor.beat()
            drift = self.drift                        # replaced (or None) when an update swaps the bundle
            if drift is not None and drift.window_full():
                self.publish_drift()

    def publish_telemetry(self) -> dict:
        """Close the current telemetry period and publish it (``telemetry`` topic)."""
        snap = self.telemetry.snapshot()
        snap["drift_observe_every"] = self._observe_every
        snap.update(cost_fields(snap, power_watts=self.power_watts, cost_per_hour=self.cost_per_hour))
        snap["queue"] = {"depth": self.requests.qsize(), "max": self.requests.maxsize}
        if self.cache is not None:
            snap["cache_entries"] = len(self.cache)
        if self.sampler is not None:
            snap["sampling"] = self.sampler.stats()
        if self.updater is not None:
            ota = self.updater.status()
            snap["ota"] = {k: ota.get(k) for k in ("state", "update_id", "active_slot", "reason")}
        shadow = self.shadow
        if shadow is not None:
            snap["shadow"] = shadow.block()
        if self.sink is not None:
            snap["sink"] = self.sink.status()
            self.sink.publish("telemetry", {"telemetry": snap})
        return snap

    def publish_drift(self) -> dict:
        """Close the current drift window and publish it (``drift``), plus a ``drift_alert`` event if any."""
        summary = self.drift.summary()
        summary["observe_every"] = self._observe_every
        if self.sink is not None:
            self.sink.publish("drift", {"drift": summary})
            if summary["alerts"]:
                self.sink.publish("events", {"type": "drift_alert", "alerts": summary["alerts"]})
        self.alerts += len(summary["alerts"])
        return summary

    def health(self) -> dict:
        """Inference status plus whatever is wrong with reporting (``problems``): the agent serves regardless."""
        m = self.rt.bundle.manifest
        sink = self.sink.status() if self.sink is not None else None
        problems = [p for p in (sink and sink.get("last_error"), sink and (sink.get("outbox") or {}).get("last_error"),
                                self.drift is not None and self.drift.note) if p]
        link_sup = getattr(self.sink, "supervisor", None)
        problems += self.supervisor.problems() + (link_sup.problems() if link_sup is not None else [])
        threads = {**self.supervisor.status(), **(link_sup.status() if link_sup is not None else {})}
        ota = self.updater.status() if self.updater is not None else None
        return {"status": "degraded" if problems else "ok", "model": m["model"]["name"],
                "version": m["model"]["version"], "backend": self.rt.backend_name,
                "ota": ota and {k: ota.get(k) for k in ("state", "update_id", "active_slot", "reason", "progress")},
                "queue": {"depth": self.requests.qsize(), "max": self.requests.maxsize},
                "mqtt_connected": bool(sink and sink.get("connected")),
                "outbox": sink.get("outbox") if sink else None, "sink": sink, "problems": problems,
                "threads": threads}

    def on_command(self, verb: str, body: dict) -> None:
        """Run host command ``verb`` (``cmd/<verb>``) from the command table and publish its reply on ``events``.

        Arguments are validated against the verb's schema first (``agentcmds`` holds the table); a refused
        command raises ``commands.BadCommand`` (``UnknownVerb`` for a verb not in the table) for the sink to
        report; any other exception is the handler's failure (``command_failed``)."""
        reply = self.commands.dispatch(verb, body, self)
        if reply is not None and self.sink is not None:
            self.sink.publish("events", reply)
