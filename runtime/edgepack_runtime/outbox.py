"""Store-and-forward: a bounded on-disk outbox (SQLite) that keeps messages, in order, while the broker is away.

The bound is a message count and a byte size; past it, ``policy`` decides: "drop-oldest" (default: the
newest state matters most) or "drop-newest". Drops and write failures (a full disk) are counted, never
raised: the device keeps serving inference. The per-device sequence number lives here too, so it stays
monotonic across restarts; it is kept in memory as well, so a failed write never hands out a number twice.
When the file cannot be opened at all, the outbox keeps messages in memory and says so in ``last_error``.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Callable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,
                                     qos INTEGER NOT NULL, retain INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
POLICIES = ("drop-oldest", "drop-newest")


class Outbox:
    """Messages waiting for the broker's acknowledgement, oldest first.

    ``add(topic, build)`` assigns the next sequence number, builds the payload with it and stores both in
    one transaction; ``pending()`` lists what to send, ``ack(seq)`` forgets a delivered message.
    """

    def __init__(self, path: str | Path, *, max_messages: int = 10_000, max_bytes: int = 50 * 2 ** 20,
                 policy: str = "drop-oldest", max_db_pages: int | None = None):
        if policy not in POLICIES:
            raise ValueError(f"outbox policy must be drop-oldest or drop-newest, not {policy!r}")
        self.path = Path(path)
        self.max_messages, self.max_bytes, self.policy = max_messages, max_bytes, policy
        self.dropped = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self.in_memory = False
        self._lock = threading.Lock()
        try:
            self._db = self._open(str(self.path), max_db_pages)
        except (OSError, sqlite3.Error) as exc:     # unwritable folder, full disk at start, corrupt file
            self._failed(exc, f"cannot open outbox {self.path}; keeping messages in memory until restart")
            self._db, self.in_memory = self._open(":memory:", None), True
        row = self._db.execute("SELECT MAX(COALESCE((SELECT value FROM meta WHERE key='seq'), 0), "
                               "COALESCE((SELECT MAX(seq) FROM messages), 0))").fetchone()
        self._seq = int(row[0])

    @staticmethod
    def _open(path: str, max_db_pages: int | None) -> sqlite3.Connection:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        if max_db_pages:  # a hard cap on the file, as a small partition would impose ("disk full")
            db.execute(f"PRAGMA max_page_count={int(max_db_pages)}")
        return db

    def next_seq(self) -> int:
        """The next per-device sequence number (persisted when the disk allows)."""
        with self._lock:
            self._seq += 1
            try:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (self._seq,))
            except sqlite3.Error as exc:
                self._failed(exc)
            return self._seq

    def add(self, topic: str, build: Callable[[int], bytes], qos: int = 1, retain: bool = False) -> int:
        """Take the next sequence number, build the payload with it, queue it; returns the number."""
        with self._lock:
            self._seq += 1
            seq, payload = self._seq, build(self._seq)
            try:
                self._db.execute("BEGIN")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (seq,))
                self._insert(seq, topic, payload, qos, retain)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._failed(exc)
            return seq

    def put(self, seq: int, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Queue a message; False when it was dropped (bound, policy) or could not be written."""
        with self._lock:
            try:
                return self._insert(seq, topic, payload, qos, retain)
            except sqlite3.Error as exc:
                self._failed(exc)
                return False

    def _insert(self, seq: int, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM messages").fetchone()
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

    def pending(self, limit: int = 100) -> list[tuple[int, str, bytes, int, bool]]:
        """Up to ``limit`` queued messages, oldest first: (seq, topic, payload, qos, retain)."""
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
            try:
                return self._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            except sqlite3.Error:
                return 0

    def stats(self) -> dict:
        return {"queued": len(self), "dropped": self.dropped, "write_errors": self.write_errors,
                "last_error": self.last_error, "max_messages": self.max_messages, "max_bytes": self.max_bytes,
                "policy": self.policy, "in_memory": self.in_memory, "seq": self._seq}

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def _failed(self, exc: Exception, what: str = "outbox write failed") -> None:
        self.write_errors += 1
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        with self._lock:
            self._db.close()
