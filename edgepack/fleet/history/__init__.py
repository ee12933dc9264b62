"""The fleet's history: every accepted message, per-device numeric series, and the newest message of each
kind per device, in SQLite (default: one file, WAL mode) or PostgreSQL (psycopg 3), same tables, same answers.

    h = open_history("sqlite:///fleet.db")            # or "postgresql://user@host:5432/edgepack"
    h.add(messages)                                   # a batch of ``messages.Message`` (the monitor does it)
    h.status()                                        # one row per device (the shape of FleetState.snapshot)
    h.history("cam-1", "p95_ms", since=t0)            # [(ts, value), ...]
    h.drift(model="kws", baseline=baseline_of(path))  # fleet-wide drift (fleetdrift.fleet_report)
    h.maintain()                                      # retention and downsampling (HistorySettings)

Retention and downsampling are ``HistorySettings`` (defaults: keep 30 days, raw messages 48 hours, then
per-minute means), also given in the URL's query, so every command that takes a history URL takes them:
``sqlite:///fleet.db?max_age=90d&raw_age=6h&bucket=300`` (durations in s, m, h or d; bucket in seconds).
"""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from ...errors import EdgepackError
from .db import connect
from .store import History, HistorySettings

__all__ = ["DEFAULT_URL", "History", "HistorySettings", "open_history", "split_settings"]

DEFAULT_URL = "sqlite:///edgepack-fleet.db"


def open_history(url: str = DEFAULT_URL, settings: HistorySettings | None = None) -> History:
    """Open (creating the tables if needed) the history at ``url``: ``sqlite:///PATH`` or ``postgresql://...``,
    with retention settings from ``settings`` or else from the URL's query (``max_age``, ``raw_age``,
    ``bucket``, ``maintain_every``)."""
    url, from_url = split_settings(url)
    return History(connect(url), settings or from_url)


_SETTINGS = ("max_age", "raw_age", "bucket", "maintain_every")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(name: str, text: str) -> float:
    try:
        value = float(text[:-1]) * _UNITS[text[-1]] if text[-1:] in _UNITS else float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise EdgepackError(f"history setting {name}={text!r} is not a duration",
                            hint="write seconds or a number with s, m, h or d, e.g. max_age=30d")
    return value


def split_settings(url: str) -> tuple[str, HistorySettings | None]:
    """The URL without the history's own query parameters, and the settings they give (None if none)."""
    base, _, query_text = url.partition("?")
    query = parse_qsl(query_text, keep_blank_values=True)
    mine = {k: v for k, v in query if k in _SETTINGS}
    if not mine:
        return url, None
    others = urlencode([(k, v) for k, v in query if k not in _SETTINGS])
    rest = f"{base}?{others}" if others else base
    values = {k: _duration(k, v) for k, v in mine.items()}
    if "bucket" in values:
        values["bucket"] = int(values["bucket"])
    if "raw_age" not in values and "max_age" in values:      # a short retention shortens the raw period too
        values["raw_age"] = min(HistorySettings.raw_age, values["max_age"])
    try:
        return rest, HistorySettings(**values)
    except ValueError as exc:
        raise EdgepackError(f"history settings in {url!r}: {exc}") from None
