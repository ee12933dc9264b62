"""The fleet's history: every accepted message, per-device numeric series, and the newest message of each
kind per device, in SQLite (default: one file, WAL mode) or PostgreSQL (psycopg 3), same tables, same answers.

    h = open_history("sqlite:///fleet.db")            # or "postgresql://user@host:5432/edgepack"
    h.add(messages)                                   # a batch of ``messages.Message`` (the monitor does it)
    h.status()                                        # one row per device (the shape of FleetState.snapshot)
    h.history("cam-1", "p95_ms", since=t0)            # [(ts, value), ...]
    h.drift(model="kws", baseline=baseline_of(path))  # fleet-wide drift (fleetdrift.fleet_report)
    h.maintain()                                      # retention and downsampling (HistorySettings)
"""
from __future__ import annotations

from .db import connect
from .store import History, HistorySettings

__all__ = ["DEFAULT_URL", "History", "HistorySettings", "open_history"]

DEFAULT_URL = "sqlite:///edgepack-fleet.db"


def open_history(url: str = DEFAULT_URL, settings: HistorySettings | None = None) -> History:
    """Open (creating the tables if needed) the history at ``url``: ``sqlite:///PATH`` or ``postgresql://...``."""
    return History(connect(url), settings)
