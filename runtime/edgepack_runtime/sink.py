"""Where the agent's reports go: one small interface, two implementations.

A sink takes ``publish(kind, body)`` (kind is ``telemetry``, ``drift``, ``events`` or ``ota/status``) and
answers ``status()`` for the health endpoint. ``MqttLink`` (``link.py``) is the fleet sink; ``JsonLinesSink``
appends one JSON object per line to a file, for a device with no broker or for debugging. Sinks with a
lifetime also have ``start()``/``stop()``; a sink that receives commands calls its ``on_command(verb, body)``.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Protocol

SCHEMA = 1


class Sink(Protocol):
    def publish(self, kind: str, body: dict, *, retain: bool = False) -> int:
        """Queue ``body`` as a message of ``kind``; returns its per-device sequence number."""

    def status(self) -> dict:
        """A JSON-able view of the sink's health (connected, last error, counters)."""


def envelope(seq: int, device: str, fleet: str, body: dict) -> bytes:
    """The common payload: schema version, sequence number, wall-clock time, who sent it, then the body."""
    return json.dumps({"schema": SCHEMA, "seq": seq, "ts": time.time(), "device": device, "fleet": fleet,
                       **body}, default=float).encode()


class JsonLinesSink:
    """Append every message as one line ``{"kind": ..., "schema", "seq", "ts", ...}`` to ``path``."""

    def __init__(self, path: str | Path, *, device_id: str = "local", fleet: str = "default"):
        self.path, self.device_id, self.fleet = Path(path), device_id, fleet
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seq, self._lock = 0, threading.Lock()
        self.written, self.write_errors, self.last_error = 0, 0, None

    def publish(self, kind: str, body: dict, *, retain: bool = False) -> int:
        with self._lock:
            self._seq += 1
            line = envelope(self._seq, self.device_id, self.fleet, {"kind": kind, **body}) + b"\n"
            try:
                with open(self.path, "ab") as f:
                    f.write(line)
                self.written += 1
                self.last_error = None          # writing works again: health stops reporting the old failure
            except OSError as exc:
                self.write_errors += 1
                self.last_error = f"cannot write {self.path}: {exc}"
            return self._seq

    def status(self) -> dict:
        return {"kind": "jsonl", "path": str(self.path), "written": self.written,
                "write_errors": self.write_errors, "last_error": self.last_error}
