"""Supervised background threads: a loop that raises is restarted with backoff, and is reported while down.

    sup = Supervisor(backoff_base=0.5, backoff_cap=30.0)
    sup.spawn("edgepack-telemetry", loop, stop)    # loop() runs until ``stop`` is set; it calls sup.beat()
    sup.status()      # {name: {"running", "restarts", "last_error", "since_beat_s"}}
    sup.problems()    # one line per thread that is down (or has stopped making progress)

A loop that raises (or returns while ``stop`` is not set) is logged, marked down with its error, and run again
after ``min(cap, base * 2**n)`` seconds, ``n`` counting failures since it last ran for ``healthy_after``
seconds. ``beat()``, called once per iteration, records progress; a loop silent for ``stall_after`` seconds is
reported as stalled (a Python thread cannot be killed, only reported). ``kill(name, error)`` makes the
thread's next ``beat()`` raise ``ThreadKilled``, a ``BaseException`` that passes the loop's own
``except Exception`` handlers: the way to test (or force) a restart from inside the loop.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("edgepack_runtime.watchdog")


class ThreadKilled(BaseException):
    """Raised by ``Supervisor.beat`` in a thread that ``Supervisor.kill`` named."""


@dataclass
class _State:
    name: str
    running: bool = False
    stopped: bool = False
    restarts: int = 0
    failures: int = 0
    last_error: str | None = None
    next_try: float | None = None
    beat: float = 0.0
    kill_error: str | None = None
    kill_times: int = 0
    thread: threading.Thread | None = None


class Supervisor:
    """Runs named loops in daemon threads and keeps them running; see the module docstring."""

    def __init__(self, *, backoff_base: float = 0.5, backoff_cap: float = 30.0, healthy_after: float = 60.0,
                 stall_after: float = 120.0, clock: Callable[[], float] = time.monotonic):
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.healthy_after, self.stall_after = healthy_after, stall_after
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def spawn(self, name: str, loop: Callable[[], None], stop: threading.Event) -> threading.Thread:
        """Run ``loop()`` in a daemon thread called ``name`` until ``stop`` is set, restarting it when it fails."""
        state = _State(name, beat=self._clock())
        thread = threading.Thread(target=self._keep, args=(state, loop, stop), name=name, daemon=True)
        state.thread = thread
        with self._lock:
            self._states[name] = state
        thread.start()
        return thread

    def join(self, timeout: float) -> None:
        deadline = self._clock() + timeout
        for state in list(self._states.values()):
            if state.thread is not None:
                state.thread.join(max(0.0, deadline - self._clock()))

    def beat(self) -> None:
        """Progress from the calling supervised thread (once per loop iteration); raises a pending ``kill``."""
        state = self._states.get(threading.current_thread().name)
        if state is None:
            return
        state.beat = self._clock()
        if state.kill_times:
            with self._lock:
                error, state.kill_times = state.kill_error, max(0, state.kill_times - 1)
            raise ThreadKilled(error)

    def kill(self, name: str, error: str = "killed by the supervisor", *, times: int = 1) -> None:
        """Make thread ``name`` fail at its next ``times`` heartbeats (each one after a restart)."""
        with self._lock:
            self._states[name].kill_error, self._states[name].kill_times = error, times

    def spare(self, name: str) -> None:
        """Cancel the kills still pending for thread ``name``."""
        with self._lock:
            self._states[name].kill_times = 0

    def _keep(self, state: _State, loop: Callable[[], None], stop: threading.Event) -> None:
        while not stop.is_set():
            started = state.beat = self._clock()
            state.running, state.next_try = True, None
            try:
                loop()
                if stop.is_set():
                    break
                raise RuntimeError("the loop returned while the agent runs")
            except (Exception, ThreadKilled) as exc:       # noqa: B036 - a thread must outlive its errors
                error = f"{type(exc).__name__}: {exc}"[:500]
            state.running = False
            if self._clock() - started >= self.healthy_after:
                state.failures = 0
            delay = min(self.backoff_cap, self.backoff_base * 2 ** min(state.failures, 30))
            state.failures += 1
            state.last_error, state.next_try = error, self._clock() + delay
            try:
                log.error("thread %s failed (%s); restarting in %.2g s", state.name, error, delay)
            except Exception:   # noqa: BLE001 - logging itself may fail when descriptors run out
                pass
            if stop.wait(delay):
                break
            state.restarts += 1
        state.running, state.stopped, state.next_try = False, True, None

    def status(self) -> dict:
        """Per thread: running, restarts, last_error, seconds since its last heartbeat."""
        now = self._clock()
        with self._lock:
            states = list(self._states.values())
        return {s.name: {"running": s.running, "restarts": s.restarts, "last_error": s.last_error,
                         "since_beat_s": round(now - s.beat, 3)} for s in states}

    def problems(self) -> list[str]:
        """One line per thread that is down (name, last error, restarts, next try) or stalled."""
        now, out = self._clock(), []
        with self._lock:
            states = list(self._states.values())
        for s in states:
            if s.stopped:
                continue
            if not s.running:
                wait = f"; next try in {max(0.0, s.next_try - now):.1f} s" if s.next_try is not None else ""
                out.append(f"thread {s.name} is not running: {s.last_error} (restarted {s.restarts} times{wait})")
            elif now - s.beat > self.stall_after:
                out.append(f"thread {s.name} has made no progress for {now - s.beat:.0f} s"
                           + (f" (last error: {s.last_error})" if s.last_error else ""))
        return out
