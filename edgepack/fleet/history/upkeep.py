"""Retention and downsampling of the history, in one transaction.

Raw messages older than ``raw_age`` (cut at a bucket boundary, so a bucket is never split between two runs)
leave their figures as one point per metric and ``bucket`` seconds holding the mean and count, then are
deleted; a late figure for a bucket already made is merged into it (weighted mean). Buckets and ``latest``
rows older than ``max_age`` are deleted too. Means are computed here, in a fixed order, so SQLite and
PostgreSQL store the same values.
"""
from __future__ import annotations

import math

from ..devicerow import SERIES
from .db import Database

MERGE_BUCKET = ("INSERT INTO buckets (fleet, device, metric, ts, value, n, res) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (fleet, device, metric, res, ts) DO UPDATE SET "
                "value = (buckets.value * buckets.n + excluded.value * excluded.n) / (buckets.n + excluded.n), "
                "n = buckets.n + excluded.n")


def buckets(rows: list[tuple], width: int) -> list[tuple]:
    """Raw ``(fleet, device, metric, ts, value)`` rows -> ``(fleet, device, metric, start, mean, n, width)``."""
    groups: dict[tuple, list[float]] = {}
    for f, d, m, ts, value in sorted(rows):
        groups.setdefault((f, d, m, math.floor(ts / width) * width), []).append(value)
    return [(f, d, m, float(start), math.fsum(v) / len(v), len(v), width)
            for (f, d, m, start), v in sorted(groups.items())]


def maintain(db: Database, settings, now: float) -> dict:
    """Downsample and delete by age (see the module docstring); returns row counts."""
    width = int(settings.bucket)
    raw_cut = math.floor((now - settings.raw_age) / width) * width
    old_cut = now - settings.max_age
    with db.transaction():
        raw = db.query(f"SELECT fleet, device, ts, {', '.join(SERIES)} FROM messages WHERE ts < ?", (raw_cut,))
        figures = [(f, d, m, ts, v) for f, d, ts, *values in raw for m, v in zip(SERIES, values) if v is not None]
        made = buckets(figures, width)
        db.executemany(MERGE_BUCKET, made)
        gone = {}
        for table, column, cut in (("messages", "ts", raw_cut), ("buckets", "ts", old_cut),
                                   ("latest", "received", old_cut)):
            gone[table] = int(db.query(f"SELECT COUNT(*) FROM {table} WHERE {column} < ?", (cut,))[0][0])
            db.execute(f"DELETE FROM {table} WHERE {column} < ?", (cut,))
    return {"downsampled": len(figures), "buckets": len(made), "deleted": gone}
