"""Shadow testing: a candidate bundle runs beside the serving one on a sampled share of requests.

The answers never change: the agent serves its own model and hands ``Shadow.offer`` the inputs, the served
outputs and their latency (one float addition per request, plus a non-blocking put on the sampled ones). A
worker thread runs the candidate on the sampled inputs and compares its outputs with the served ones; when its
bounded queue is full the sample is dropped and counted, so a slow candidate never slows the serving path.

    shadow = Shadow(Runtime.open("candidate.edgepack"), share=0.1, info={"update_id": ..., "model": ...})
    agent.shadow = shadow          # Agent.account() offers every call; publish_telemetry() adds the block
    thread = threading.Thread(target=shadow.work, args=(agent._stop,))
    shadow.block()                 # the telemetry ``shadow`` block (this period + ``total``); resets the period

Figures per sample (one backend call): cosine (the worst output's, float64, as ``compare.cosine``), max abs
difference (over every output), top-1 agreement for outputs that look like class scores (``[N, K]``, per row),
and both latencies (the serving call's and the candidate's). The installer (``shadowinstall``) owns where a
shadow lives on disk, its events and its promotion.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from typing import Callable

import numpy as np

from .compare import cosine, is_classifier_like
from .metrics import LatencyHistogram


class Figures:
    """Agreement and latency accumulated over samples (one telemetry period, or the shadow's whole life)."""

    def __init__(self):
        self.samples = self.dropped = self.errors = self.nonfinite = 0
        self.rows = self.top1 = 0
        self.cos_sum, self.cos_min, self.max_abs = 0.0, None, 0.0
        self.shadow, self.serving = LatencyHistogram(), LatencyHistogram()

    def add(self, cos: float, max_abs: float | None, top1: tuple[int, int] | None, t_shadow: float,
            t_serving: float) -> None:
        self.samples += 1
        self.cos_sum += cos
        self.cos_min = cos if self.cos_min is None else min(self.cos_min, cos)
        if max_abs is None:
            self.nonfinite += 1
        else:
            self.max_abs = max(self.max_abs, max_abs)
        if top1 is not None:
            self.rows, self.top1 = self.rows + top1[1], self.top1 + top1[0]
        self.shadow.add(t_shadow)
        self.serving.add(t_serving)

    def as_dict(self) -> dict:
        n = self.samples
        ms = lambda h, q: round(h.quantile(q) * 1e3, 4) if h.total else None  # noqa: E731
        return {"samples": n, "dropped": self.dropped, "errors": self.errors, "nonfinite": self.nonfinite,
                "agreement": {"top1": self.top1 / self.rows if self.rows else None,
                              "cosine_mean": self.cos_sum / n if n else None, "cosine_min": self.cos_min,
                              "max_abs": self.max_abs if n > self.nonfinite else None},
                "latency_ms": {"shadow": {"p50": ms(self.shadow, 0.5), "p95": ms(self.shadow, 0.95)},
                               "serving": {"p50": ms(self.serving, 0.5), "p95": ms(self.serving, 0.95)}}}


def agreement(served: dict, got: dict) -> tuple[float, float | None, tuple[int, int] | None]:
    """``(cosine, max_abs, top1)`` of the candidate's outputs ``got`` against the ``served`` ones: the worst
    output's cosine, the largest absolute difference (None when an output holds NaN/Inf on either side, then
    cosine is 0), and ``(agreeing rows, rows)`` over class-score outputs (None when there are none).
    Raises ValueError when an output is missing or its shape differs."""
    cos, max_abs, agree, rows = 1.0, 0.0, 0, 0
    for name, ref in served.items():
        if name not in got:
            raise ValueError(f"the candidate has no output {name!r}")
        a, b = np.asarray(ref, np.float64), np.asarray(got[name], np.float64)
        if a.shape != b.shape:
            raise ValueError(f"output {name!r} has shape {list(b.shape)} in the candidate, {list(a.shape)} served")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            cos, max_abs = 0.0, None
            continue
        cos = min(cos, cosine(a, b))
        if max_abs is not None and a.size:
            max_abs = max(max_abs, float(np.max(np.abs(a - b))))
        if np.asarray(ref).dtype.kind == "f" and is_classifier_like(a.shape):
            flat_a, flat_b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
            agree += int(np.sum(flat_a.argmax(axis=1) == flat_b.argmax(axis=1)))
            rows += a.shape[0]
    return cos, max_abs, ((agree, rows) if rows else None)


class Shadow:
    """One candidate runtime in the shadow of the serving one; see the module docstring."""

    def __init__(self, runtime, *, share: float, queue_size: int = 8, info: dict | None = None,
                 clock: Callable[[], float] = time.time):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"shadow share must be in [0, 1], not {share!r}")
        self.rt, self.share, self.info = runtime, float(share), dict(info or {})
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self.started = clock()
        self.stopped = threading.Event()
        self.last_error: str | None = None
        self._credit = 0.0
        self._lock = threading.Lock()
        self.period, self.total = Figures(), Figures()

    # the serving path ---------------------------------------------------------------------------
    def offer(self, inputs, outputs: dict, latency: float) -> None:
        """Called for every served backend call; queues every 1/share-th one for the candidate (never blocks)."""
        self._credit += self.share
        if self._credit < 1.0 or self.stopped.is_set():
            return
        self._credit -= 1.0
        try:
            self.queue.put_nowait((inputs, outputs, latency))
        except queue.Full:
            with self._lock:
                self.period.dropped += 1
                self.total.dropped += 1

    # the worker ---------------------------------------------------------------------------------
    def work(self, agent_stop: threading.Event, beat: Callable[[], None] = lambda: None,
             idle: Callable[[], None] = lambda: None, idle_every: float = 1.0, nice: int = 0) -> None:
        """Run sampled calls on the candidate until ``stop()`` or ``agent_stop``; then close its runtime.
        ``idle()`` is called about every ``idle_every`` seconds (the installer checks whether it now serves).
        ``nice`` lowers this thread's CPU priority (see ``lower_priority``)."""
        lower_priority(nice)
        next_idle = time.monotonic() + idle_every
        while not self.stopped.is_set():
            if agent_stop.is_set():
                self.stopped.set()
                break
            beat()
            if time.monotonic() >= next_idle:
                next_idle = time.monotonic() + idle_every
                idle()
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self.run_one(*item)
        self.rt.close()

    def run_one(self, inputs, served: dict, t_serving: float) -> None:
        """Run one sampled call on the candidate and add its figures."""
        t0 = time.perf_counter()
        try:
            got = self.rt.run(inputs)
            t_shadow = time.perf_counter() - t0
            cos, max_abs, top1 = agreement(served, got)
        except Exception as exc:  # noqa: BLE001 - a failing candidate is a figure, never a failure of the agent
            with self._lock:
                self.period.errors += 1
                self.total.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return
        with self._lock:
            for f in (self.period, self.total):
                f.add(cos, max_abs, top1, t_shadow, t_serving)

    def stop(self) -> None:
        """Stop taking samples; the worker closes the candidate's runtime when it ends."""
        self.stopped.set()

    # reporting ----------------------------------------------------------------------------------
    def block(self, *, reset: bool = True) -> dict:
        """The telemetry ``shadow`` block: info, this period's figures (reset when ``reset``) and ``total``."""
        with self._lock:
            period, total = self.period.as_dict(), self.total.as_dict()
            if reset:
                self.period = Figures()
        return {**self.info, "share": self.share, "started": self.started, **period, "total": total,
                "queue": {"depth": self.queue.qsize(), "max": self.queue.maxsize}, "last_error": self.last_error}


def lower_priority(increment: int) -> None:
    """Raise the calling thread's niceness by ``increment`` (Linux threads have their own; threads it starts
    afterwards, such as a backend's pool, inherit it): the serving threads then win the CPU, and a shadow
    short of CPU drops samples instead of slowing answers. Best effort: a no-op where unsupported."""
    if increment <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment))
    except (AttributeError, OSError):
        pass


def open_lowered(opener: Callable[[], object], increment: int):
    """``opener()`` run in a short-lived thread whose priority was lowered first, so that the threads a
    backend session starts (its intra-op pool) inherit the lower priority; returns its result or raises."""
    box: dict = {}

    def run():
        lower_priority(increment)
        try:
            box["value"] = opener()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
    t = threading.Thread(target=run, name="edgepack-shadow-open", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
