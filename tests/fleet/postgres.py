"""A real PostgreSQL server for the fleet tests: ``initdb`` into a fresh folder and ``pg_ctl start`` on a free
loopback port (unix socket in the same folder), trust authentication for one superuser, fsync off.

PostgreSQL refuses to run as root: as root the folder is handed to the ``postgres`` user and every server
command runs through ``runuser -u postgres``. Debian's ``postgresql`` package puts the binaries in
``/usr/lib/postgresql/<version>/bin`` (scripts/test.sh installs it).
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.agent.conftest import free_port

USER = "edgepack"
_dbs = itertools.count()


def pg_bin() -> Path | None:
    """The folder of ``pg_ctl`` and ``initdb`` (the newest Debian version, else PATH), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path and shutil.which("initdb") else None


class Postgres:
    """``server = Postgres(bin_dir).start()``; ``server.new_database()`` -> URL; ``server.stop()``."""

    def __init__(self, bin_dir: Path):
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="edgepack-pg-"))   # not under pytest's root-only folder
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root)

    def start(self) -> "Postgres":
        done = self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr[-800:]}")
        done = self._pg_start()
        if done.returncode:
            log = (self.root / "log").read_text()[-800:] if (self.root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-400:]} {log}")
        return self

    def _pg_start(self) -> subprocess.CompletedProcess:
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off")
        return self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "-t", "30",
                         "start")

    def restart(self, down: float = 0.0) -> None:
        """Stop the server (fast: connections are cut), wait ``down`` seconds, start it again on the same port."""
        import time
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        time.sleep(down)
        done = self._pg_start()
        if done.returncode:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-400:]}")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """A fresh empty database (CREATE DATABASE); returns its URL."""
        import psycopg
        name = f"t{os.getpid()}_{next(_dbs)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
