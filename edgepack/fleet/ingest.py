"""The monitor's ingest: one MQTT subscriber feeding the live ``FleetState`` and (on a writer thread) the history.

    mon = Monitor("mqtt://127.0.0.1:1883", history="sqlite:///fleet.db").start()
    mon.wait_connected(5)
    mon.state.snapshot()        # the live fleet;  mon.stats(): connection, counters, history backlog
    mon.stop()                  # writes what is queued, then closes the history

paho's network thread only parses (``Gate``: strict, per-device flood control, counted refusals) and folds
the message into the ``FleetState``; stored messages go to a bounded queue that a writer thread empties in
batches (``writer.HistoryWriter``: one transaction each, reconnect and retry while the database is down),
so a slow disk or a database restart never stalls the MQTT loop (a full queue drops and counts).
MQTT 5 is spoken when the broker has it (3.1.1 otherwise). With ``share_group``, several monitors split the
messages through the shared subscription ``$share/<group>/...``; each still subscribes to the retained
``state`` topic directly (a shared subscription gets no retained messages), so every monitor knows who is
online, and the history stores the duplicates once.
"""
from __future__ import annotations

import logging
import time

from .gate import Gate, GateSettings
from .fleetstate import FleetState
from .ingestlink import IngestLink
from .messages import Message, parse
from .writer import HistoryWriter

__all__ = ["Monitor", "parse"]
log = logging.getLogger("edgepack.fleet.ingest")


class Monitor:
    """Subscribe to a fleet (``fleet="+"``: every fleet) on ``broker_url`` and keep ``state`` (and ``history``)."""

    def __init__(self, broker_url: str, *, history=None, share_group: str | None = None, fleet: str = "+",
                 qos: int = 1, username: str | None = None, password: str | None = None, ca: str | None = None,
                 gate: GateSettings | None = None, history_settings=None, client_id: str | None = None,
                 protocol: str = "auto", batch: int = 2000, flush_every: float = 0.2, backlog: int = 200_000,
                 series_len: int = 720):
        self.gate = Gate(gate)
        self.state = FleetState(series_len=series_len, counters=self.gate.counters)
        self.history = _open(history, history_settings)
        self.link = IngestLink(broker_url, on_message=self._on_message, fleet=fleet, share_group=share_group,
                               qos=qos, username=username, password=password, ca=ca, client_id=client_id,
                               protocol=protocol)
        self.writer = HistoryWriter(self.history, batch=batch, flush_every=flush_every, backlog=backlog) \
            if self.history is not None else None
        self._listeners: list = []
        self.received = 0

    # lifetime ----------------------------------------------------------------------------
    def start(self) -> "Monitor":
        """Connect (in the background, reconnecting as needed) and start the writer; returns ``self``."""
        if self.writer is not None:
            self.writer.start()
        self.link.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        """True once subscribed to the broker (within ``timeout`` seconds)."""
        return self.link.subscribed.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Disconnect, store what is still queued (up to ``timeout`` seconds), close the history."""
        self.link.stop()
        if self.writer is not None:
            self.writer.stop(timeout)
            self.history.close()

    def __enter__(self) -> "Monitor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def add_listener(self, fn) -> None:
        """Call ``fn(message)`` after each accepted message is applied (on the network thread: be quick)."""
        self._listeners.append(fn)

    # the network thread ------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        self.received += 1
        msg = self.gate.check(topic, payload, time.time())
        if not isinstance(msg, Message):
            log.debug("refused %s: %s", msg.reason, msg.detail)
            return
        points = self.state.apply(msg)
        if self.writer is not None:
            self.writer.put(msg, points)
        for fn in self._listeners:
            try:
                fn(msg)
            except Exception:  # noqa: BLE001  (a listener's bug must not stop the ingest)
                log.exception("monitor listener failed")

    def stats(self) -> dict:
        """Connection, ingest counters (accepted, rejected by reason, recent refusals) and the history's state."""
        out = {**self.link.status(), "received": self.received, **self.gate.counters(),
               "recent_rejected": self.gate.recent(), "devices": len(self.state)}
        if self.writer is not None:
            out["history"] = self.writer.stats()
        return out

    def flushed(self) -> bool:
        """Every accepted message so far is in the history (or there is none)."""
        return self.writer is None or (self.writer.idle() and self.writer.written + self.writer.dropped
                                       >= self.gate.accepted)


def _open(history, settings):
    if history is None or not isinstance(history, str):
        return history
    from .history import open_history
    return open_history(history, settings)
