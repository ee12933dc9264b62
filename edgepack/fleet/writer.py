"""The monitor's history writer: a bounded queue filled by the MQTT thread, emptied by one writer thread in
batches (one transaction each), so the network loop never waits for a disk or a database server.

When a write fails the writer reconnects and retries the same batch with backoff (up to 5 s apart) for as
long as the database does not answer; meanwhile the queue fills up to ``backlog`` messages and what arrives
beyond that is dropped and counted. When the database answers but still refuses the batch, the batch is
written message by message and only the messages it refuses are dropped (counted as ``refused_by_db``).
Retention and downsampling (``History.maintain``) run on the same thread every ``maintain_every`` seconds.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

log = logging.getLogger("edgepack.fleet.ingest")

__all__ = ["HistoryWriter"]


class HistoryWriter:
    """``w = HistoryWriter(history).start()``; ``w.put(message, points)`` from any thread; ``w.stop()``."""

    def __init__(self, history, *, batch: int = 2000, flush_every: float = 0.2, backlog: int = 200_000,
                 stop_attempts: int = 3):
        self.history, self.batch, self.flush_every, self.backlog = history, batch, flush_every, backlog
        self.stop_attempts = stop_attempts          # failed attempts per batch allowed once stopping
        self.queue: deque = deque()
        self.written = self.dropped = self.refused_by_db = self.write_errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "HistoryWriter":
        self._thread = threading.Thread(target=self._loop, name="edgepack-monitor-writer", daemon=True)
        self._thread.start()
        return self

    def put(self, msg, points) -> None:
        """Queue one message (with the series points the live view computed, or None); drop it when full."""
        if len(self.queue) >= self.backlog:
            self.dropped += 1
        else:
            self.queue.append((msg, points))

    def idle(self) -> bool:
        """Nothing queued and nothing being written."""
        return not self.queue and not self._busy

    _busy = False

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued (giving up on a dead database after ``stop_attempts``), then return."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict:
        return {"url": self.history.url, "written": self.written, "backlog": len(self.queue), "dropped": self.dropped,
                "refused_by_db": self.refused_by_db, "write_errors": self.write_errors, "last_error": self.last_error}

    def _loop(self) -> None:
        every = self.history.settings.maintain_every
        next_upkeep = time.monotonic() + every
        while True:
            self._busy = True
            batch = [self.queue.popleft() for _ in range(min(self.batch, len(self.queue)))]
            if batch:
                self._write(batch)
            self._busy = False
            if not batch and self._stop.is_set():
                return
            if time.monotonic() >= next_upkeep:
                next_upkeep = time.monotonic() + every
                self._upkeep()
            if len(self.queue) < self.batch:
                self._stop.wait(self.flush_every)

    def _add(self, batch: list) -> None:
        msgs = [m for m, _ in batch]
        figures = [None if p is None else {metric: v for metric, _, v in p} for _, p in batch]
        self.history.add(msgs, figures=figures)
        self.written += len(batch)

    def _failed(self, exc: Exception, attempt: int) -> None:
        self.write_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("history write failed (attempt %d): %s", attempt, self.last_error)

    def _write(self, batch: list) -> None:
        delay, attempt, reconnected = 0.2, 0, False
        while True:
            attempt += 1
            try:
                self._add(batch)
                self.last_error = None
                return
            except Exception as exc:  # noqa: BLE001  (the database's error: counted, then handled below)
                self._failed(exc, attempt)
            if self._stop.is_set() and attempt >= self.stop_attempts:
                self.dropped += len(batch)
                return
            try:
                self.history.reconnect()
            except Exception as exc:  # noqa: BLE001  (still down: wait and try again)
                self._failed(exc, attempt)
            if self.history.alive():
                if reconnected:                  # it answers, yet refuses this batch twice: find what it refuses
                    return self._one_by_one(batch)
                reconnected = True
                continue
            self._stop.wait(delay)
            delay = min(5.0, delay * 2)

    def _one_by_one(self, batch: list) -> None:
        for item in batch:
            try:
                self._add([item])
            except Exception as exc:  # noqa: BLE001
                self._failed(exc, 0)
                self.refused_by_db += 1
                self.dropped += 1

    def _upkeep(self) -> None:
        try:
            self.history.maintain()
        except Exception as exc:  # noqa: BLE001
            self.write_errors += 1
            self.last_error = f"retention: {type(exc).__name__}: {exc}"[:500]
