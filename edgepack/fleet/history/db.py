"""The two databases behind the history, one small interface: ``query``, ``execute``, ``executemany``,
``insert_rows`` and ``transaction``, with ``?`` placeholders in every statement (PostgreSQL gets ``%s``).

SQLite (``sqlite:///PATH``, the default) runs in WAL mode so readers (``edgepack fleet status``) never block
the monitor's writer; PostgreSQL (``postgresql://...``) goes through psycopg 3. Both get the same tables and
column types (``schema.SCHEMA``), so the same statements give the same answers.
"""
from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from urllib.parse import urlparse

from ...errors import EdgepackError
from .schema import DDL, SCHEMA_VERSION

__all__ = ["Database", "connect"]


class Database:
    """A connection shared by the threads of one process (a lock serializes them)."""

    dialect = "?"

    def __init__(self, conn, url: str, opener=None):
        self.conn, self.url, self._opener = conn, url, opener   # opener(): a new connection (reconnect)
        self.lock = threading.RLock()
        self._depth = 0            # transactions open (reads inside one must not commit it)
        self._multi: dict[tuple[str, int], str] = {}    # multi-row statements by (head, rows)

    def _sql(self, sql: str) -> str:
        return sql

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self.lock:
            cur = self.conn.execute(self._sql(sql), tuple(params))
            rows = cur.fetchall()
            if not self._depth:
                self.conn.commit()     # end the read transaction (WAL checkpoints and PostgreSQL's MVCC want it)
            return rows

    @contextlib.contextmanager
    def transaction(self):
        """Statements inside commit together (or not at all)."""
        with self.lock:
            self._depth += 1
            try:
                yield self
                self.conn.commit()
            except BaseException:
                try:
                    self.conn.rollback()
                except Exception:  # noqa: BLE001  (a dead connection cannot roll back: the error that killed it counts)
                    pass
                raise
            finally:
                self._depth -= 1

    def execute(self, sql: str, params: tuple | list = ()) -> None:
        self.conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: list) -> None:
        if rows:
            self.conn.cursor().executemany(self._sql(sql), rows)

    def insert_rows(self, insert: tuple[str, int, str], rows: list, per_statement: int = 400) -> None:
        """``rows`` through ``insert`` = (head, columns, tail), many rows per statement: one multi-row VALUES
        is one step for the database (and one release of the GIL), where ``executemany`` takes one per row."""
        head, width, tail = insert
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            sql = self._multi.get((head, len(chunk)))
            if sql is None:
                values = ", ".join(["(" + ", ".join("?" * width) + ")"] * len(chunk))
                sql = self._multi[(head, len(chunk))] = self._sql(f"{head} VALUES {values} {tail}")
            self.conn.execute(sql, [v for row in chunk for v in row])

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def alive(self) -> bool:
        """Whether the connection answers a trivial query."""
        try:
            self.query("SELECT 1")
            return True
        except Exception:  # noqa: BLE001  (whatever the driver raises: not alive)
            return False

    def reconnect(self) -> None:
        """Replace the connection by a new one (after the server restarted or the link broke)."""
        if self._opener is None:
            return
        with self.lock:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
            self.conn = self._opener()

    def setup(self) -> None:
        with self.transaction():
            for statement in DDL[self.dialect]:
                self.execute(statement)
            found = self.query("SELECT value FROM meta WHERE key = 'schema'")
            if not found:
                self.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif found[0][0] != str(SCHEMA_VERSION):
                raise EdgepackError(f"history {self.url} has schema {found[0][0]}, this edgepack writes "
                                    f"{SCHEMA_VERSION}", hint="use a new history database (or an edgepack that "
                                    "matches this one)")


class SqliteDB(Database):
    dialect = "sqlite"


class PostgresDB(Database):
    dialect = "postgresql"

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def executemany(self, sql: str, rows: list) -> None:
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)


def connect(url: str) -> Database:
    """``sqlite:///PATH`` (or a bare path) or ``postgresql://USER@HOST:PORT/DB``; tables are created if new."""
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        db = _postgres(url)
    elif parsed.scheme in ("sqlite", ""):
        db = _sqlite(url, parsed)
    else:
        raise EdgepackError(f"history URL must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB, not {url!r}")
    db.setup()
    return db


def _sqlite(url: str, parsed) -> SqliteDB:
    import sqlite3
    path = parsed.path if parsed.scheme else url
    if parsed.scheme and parsed.netloc:       # sqlite://relative/path.db: netloc is the first folder
        path = parsed.netloc + parsed.path
    if not path:
        raise EdgepackError(f"history URL {url!r} has no file path", hint="write sqlite:///PATH (three slashes)")
    if path in ("/:memory:", ":memory:"):      # sqlite:///:memory: a private database (tests, one-off reads)
        path = ":memory:"
    target = Path(path)

    def opener():
        conn = sqlite3.connect(str(target), check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    try:
        if path != ":memory:":
            target.parent.mkdir(parents=True, exist_ok=True)
        conn = opener()
    except (OSError, sqlite3.Error) as exc:
        raise EdgepackError(f"cannot open the history {target}: {exc}",
                            hint="check the path and that this user may write there") from None
    return SqliteDB(conn, url, opener)


def _postgres(url: str) -> PostgresDB:
    try:
        import psycopg
    except ImportError:
        raise EdgepackError("a PostgreSQL history needs psycopg 3, which is not installed",
                            hint="pip install 'edgepack[fleet]' (or psycopg[binary])") from None
    opener = lambda: psycopg.connect(url, connect_timeout=10)   # noqa: E731
    try:
        conn = opener()
    except psycopg.Error as exc:
        raise EdgepackError(f"cannot connect to the history {_safe(url)}: {str(exc).strip()}",
                            hint="check the host, port, user, password and database name") from None
    return PostgresDB(conn, _safe(url), opener)


def _safe(url: str) -> str:
    """The URL without its password (for messages)."""
    p = urlparse(url)
    if p.password:
        return url.replace(f":{p.password}@", ":***@", 1)
    return url
