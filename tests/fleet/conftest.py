"""Fixtures of the fleet tests (M1 ingest/history, M2 monitor, M3 simulator share this folder):

- the agent tests' real mosquitto: ``broker`` (one per session, restartable), ``subscribe``;
- ``postgres``: a real PostgreSQL server for the session (tests/fleet/postgres.py), ``pg_url``: a fresh
  database in it per test; ``history_url``: parametrized over a fresh SQLite file and a fresh PostgreSQL
  database, for tests that must hold on both.

Under CI=true a missing mosquitto or PostgreSQL (or psycopg) fails the tests instead of skipping them.
"""
from __future__ import annotations

import os

import pytest

from tests.agent.conftest import broker, mosquitto_bin, session_broker, subscribe, under_ci  # noqa: F401

from .postgres import Postgres, pg_bin


def _missing(why: str):
    if under_ci():
        pytest.fail(f"CI=true and {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL server (initdb + pg_ctl on a free loopback port), stopped after the session."""
    bin_dir = pg_bin()
    if bin_dir is None:
        _missing("PostgreSQL is not installed: apt-get install postgresql (scripts/test.sh does it)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed: pip install 'psycopg[binary]' (the test extra has it)")
    server, owner = Postgres(bin_dir).start(), os.getpid()
    yield server
    if os.getpid() == owner:     # a forked test's child (pytest-forked) finalizes the session too: not its server
        server.stop()


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request, tmp_path) -> str:
    """The same test on a fresh SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.db"
    return request.getfixturevalue("postgres").new_database()
