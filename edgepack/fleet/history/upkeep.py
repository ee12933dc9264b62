"""Retention and downsampling of the history, in one transaction.

Raw points older than ``raw_age`` (cut at a bucket boundary, so a bucket is never split between two runs)
become one point per ``bucket`` seconds holding their mean and count; a late raw point for a bucket already
made is merged into it (weighted mean). Raw messages older than ``raw_age`` are deleted; points and
``latest`` rows older than ``max_age`` too. Means are computed here, in a fixed order, so SQLite and
PostgreSQL store the same values.
"""
from __future__ import annotations

import math

from .db import Database

MERGE_BUCKET = ("INSERT INTO points (fleet, device, metric, ts, value, n, res) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (fleet, device, metric, res, ts) DO UPDATE SET "
                "value = (points.value * points.n + excluded.value * excluded.n) / (points.n + excluded.n), "
                "n = points.n + excluded.n")


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
        raw = db.query("SELECT fleet, device, metric, ts, value FROM points WHERE res = 0 AND ts < ?", (raw_cut,))
        made = buckets(raw, width)
        db.executemany(MERGE_BUCKET, made)
        db.execute("DELETE FROM points WHERE res = 0 AND ts < ?", (raw_cut,))
        gone = {}
        for table, column, cut in (("messages", "ts", raw_cut), ("points", "ts", old_cut),
                                   ("latest", "received", old_cut)):
            gone[table] = int(db.query(f"SELECT COUNT(*) FROM {table} WHERE {column} < ?", (cut,))[0][0])
            db.execute(f"DELETE FROM {table} WHERE {column} < ?", (cut,))
    return {"downsampled_points": len(raw), "buckets": len(made), "deleted": gone}
