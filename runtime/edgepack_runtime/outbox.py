"""Store-and-forward: a bounded on-disk outbox (SQLite) that keeps messages, in order, while the broker is away.

The bound is a message count and a byte size; past it, ``policy`` decides: "drop-oldest" (default: the
newest state matters most) or "drop-newest". Drops and write failures (a full disk) are counted, never
raised: the device keeps serving inference. The per-device sequence number lives here too, so it stays
monotonic across restarts.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,
                                     qos INTEGER NOT NULL, retain INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class Outbox:
    def __init__(self, path: str | Path, *, max_messages: int = 10_000, max_bytes: int = 50 * 2 ** 20,
                 policy: str = "drop-oldest", max_db_pages: int | None = None):
        if policy not in ("drop-oldest", "drop-newest"):
            raise ValueError(f"outbox policy must be drop-oldest or drop-newest, not {policy!r}")
        self.path = Path(path)
        self.max_messages, self.max_bytes, self.policy = max_messages, max_bytes, policy
        self.dropped = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        if max_db_pages:  # a hard cap on the file, as a small partition would impose ("disk full")
            self._db.execute(f"PRAGMA max_page_count={int(max_db_pages)}")

    def next_seq(self) -> int:
        """The next per-device sequence number (persisted)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
            seq = (row[0] if row else 0) + 1
            try:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (seq,))
            except sqlite3.Error as exc:
                self._failed(exc)
            return seq

    def put(self, seq: int, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Queue a message; False when it was dropped (bound, policy) or could not be written."""
        with self._lock:
            try:
                count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) "
                                               "FROM messages").fetchone()
                while count >= self.max_messages or size + len(payload) > self.max_bytes:
                    if self.policy == "drop-newest" or count == 0:
                        self.dropped += 1
                        return False
                    oldest = self._db.execute("SELECT seq, LENGTH(payload) FROM messages ORDER BY seq LIMIT 1").fetchone()
                    self._db.execute("DELETE FROM messages WHERE seq=?", (oldest[0],))
                    self.dropped += 1
                    count, size = count - 1, size - oldest[1]
                self._db.execute("INSERT INTO messages VALUES (?, ?, ?, ?, ?)", (seq, topic, payload, qos, int(retain)))
                return True
            except sqlite3.Error as exc:
                self._failed(exc)
                return False

    def pending(self, limit: int = 100) -> list[tuple[int, str, bytes, int, bool]]:
        with self._lock:
            try:
                rows = self._db.execute("SELECT seq, topic, payload, qos, retain FROM messages ORDER BY seq LIMIT ?",
                                        (limit,)).fetchall()
            except sqlite3.Error as exc:
                self._failed(exc)
                return []
        return [(s, t, bytes(p), q, bool(r)) for s, t, p, q, r in rows]

    def ack(self, seq: int) -> None:
        with self._lock:
            try:
                self._db.execute("DELETE FROM messages WHERE seq=?", (seq,))
            except sqlite3.Error as exc:
                self._failed(exc)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]

    def stats(self) -> dict:
        return {"queued": len(self), "dropped": self.dropped, "write_errors": self.write_errors,
                "last_error": self.last_error, "max_messages": self.max_messages, "policy": self.policy}

    def _failed(self, exc: Exception) -> None:
        self.write_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        with self._lock:
            self._db.close()
