"""What each stage of a build costs: wall seconds, CPU seconds and the peak resident memory reached.

    rec = StageRecorder()
    with rec:                                   # starts the RSS sampler; also makes ``rec`` the current one
        with rec.stage("reference"):
            ...
        with stage("latency"):                  # module-level: records into the current recorder, if any
            ...
    rec.figures()   # {"stages": [{"name", "seconds", "cpu_seconds", "peak_rss_mb"}, ...], "seconds", ...}

Stages nest, and time is charged to the innermost one (a ``latency`` stage opened inside ``convert:cpu``
is taken out of the conversion's figure), so the stage seconds add up to the whole build's. A stage name
seen again accumulates (two targets' latencies stay two names: ``latency:cpu``...).

Peak memory: the kernel keeps the process' lifetime peak (``VmHWM`` in /proc/self/status), but not a peak
per stage, and resetting it (/proc/self/clear_refs) would also reset the figure ``/usr/bin/time`` and
``getrusage`` report for the whole process, so it is left alone. Instead a daemon thread reads the
current RSS from /proc/self/statm every ``interval`` seconds (one small read; no measurable cost) and
keeps the highest value seen in the open stage. That misses spikes shorter than the interval, so when
the lifetime peak rose during a stage, that new peak (exact) is the stage's figure. ``resource.getrusage``
deltas would only ever show a stage that sets a new lifetime peak, which is why they are not used alone.
Off Linux (no /proc) memory figures are None and only times are recorded.
"""
from __future__ import annotations

import contextvars
import os
import threading
import time
from contextlib import contextmanager

__all__ = ["StageRecorder", "peak_rss_mb", "stage"]

_MB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_CURRENT: contextvars.ContextVar["StageRecorder | None"] = contextvars.ContextVar("edgepack_stages", default=None)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float | None:
    """The process' lifetime peak RSS in MB (VmHWM), None where /proc is missing."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class _Open:
    """A stage on the stack: its running totals and the segment currently being measured."""

    def __init__(self, name: str):
        self.name = name
        self.seconds = self.cpu = 0.0
        self.peak = 0
        self.resume()

    def resume(self) -> None:
        self.t0, self.c0, self.hwm0 = time.perf_counter(), time.process_time(), peak_rss_mb()

    def pause(self) -> None:
        self.seconds += time.perf_counter() - self.t0
        self.cpu += time.process_time() - self.c0
        hwm = peak_rss_mb()
        if hwm is not None and self.hwm0 is not None and hwm > self.hwm0:
            self.peak = max(self.peak, int(hwm * _MB))   # the lifetime peak was reached in this segment


class StageRecorder:
    """Records stages (see the module docstring); use as a context manager around the whole run."""

    def __init__(self, *, interval: float = 0.01):
        self.interval = interval
        self._stack: list[_Open] = []
        self._done: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token = None
        self._t0 = self._c0 = 0.0

    # -- lifetime -----------------------------------------------------------------------------
    def __enter__(self) -> "StageRecorder":
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        self._token = _CURRENT.set(self)
        if _rss_bytes() is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._sample, name="edgepack-rss", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._total = (time.perf_counter() - self._t0, time.process_time() - self._c0)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._note(_rss_bytes())

    def _note(self, rss: int | None) -> None:
        if rss is None:
            return
        with self._lock:
            if self._stack and rss > self._stack[-1].peak:
                self._stack[-1].peak = rss

    # -- stages -------------------------------------------------------------------------------
    @contextmanager
    def stage(self, name: str):
        """Measure the enclosed block as stage ``name`` (nested stages are charged to the innermost)."""
        self._note(_rss_bytes())
        with self._lock:
            if self._stack:
                self._stack[-1].pause()
            self._stack.append(_Open(name))
            self._done.setdefault(name, {"name": name, "seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_mb": None})
        self._note(_rss_bytes())
        try:
            yield
        finally:
            self._note(_rss_bytes())
            with self._lock:
                top = self._stack.pop()
                top.pause()
                if self._stack:
                    self._stack[-1].resume()
                    self._stack[-1].peak = max(self._stack[-1].peak, _rss_bytes() or 0)
            self._record(top.name, top.seconds, top.cpu, top.peak / _MB if top.peak else None)

    def _record(self, name: str, seconds: float, cpu: float, peak: float | None) -> None:
        rec = self._done[name]                        # listed when it started: stages keep their start order
        rec["seconds"] += seconds
        rec["cpu_seconds"] += cpu
        if peak is not None:
            rec["peak_rss_mb"] = max(rec["peak_rss_mb"] or 0.0, peak)

    def figures(self) -> dict:
        """JSON-able figures: every stage in start order, the run's totals and the process' lifetime peak RSS."""
        seconds, cpu = getattr(self, "_total", (time.perf_counter() - self._t0, time.process_time() - self._c0))
        stages = [{"name": r["name"], "seconds": round(r["seconds"], 4), "cpu_seconds": round(r["cpu_seconds"], 4),
                   "peak_rss_mb": None if r["peak_rss_mb"] is None else round(r["peak_rss_mb"], 1)}
                  for r in self._done.values()]
        peak = peak_rss_mb()
        return {"stages": stages, "seconds": round(seconds, 4), "cpu_seconds": round(cpu, 4),
                "peak_rss_mb": None if peak is None else round(peak, 1)}


@contextmanager
def stage(name: str):
    """Record the block as stage ``name`` in the current recorder; does nothing outside one."""
    rec = _CURRENT.get()
    if rec is None:
        yield
        return
    with rec.stage(name):
        yield
