"""The monitor's history writer when the database misbehaves: a PostgreSQL restart in the middle of the ingest
loses nothing (reconnect, retry); a database that is down keeps the backlog up to its bound and counts what
it drops; rows the database refuses (a trigger) cost only those rows. A server of its own (restarted here)."""
from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest

from edgepack.fleet.history import open_history
from edgepack.fleet.ingest import Monitor
from edgepack.fleet.writer import HistoryWriter

from .conftest import _missing
from .envelopes import message, payload, state_payload, telemetry_body, topic
from .postgres import Postgres, pg_bin

T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def own_postgres():
    """A PostgreSQL server only this module uses (its tests stop and restart it)."""
    if pg_bin() is None:
        _missing("PostgreSQL is not installed: apt-get install postgresql (scripts/test.sh does it)")
    server = Postgres(pg_bin()).start()
    yield server
    server.stop()


def wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_postgresql_restart_during_ingest_loses_nothing(broker, own_postgres):
    url = own_postgres.new_database()
    mon = Monitor(f"mqtt://127.0.0.1:{broker.port}", history=url, fleet="pgr", flush_every=0.05, batch=50).start()
    assert mon.wait_connected(10)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    for d in range(10):
        c.publish(topic(f"p{d}", "state", "pgr"), state_payload(f"p{d}", fleet="pgr"), qos=1)
    for s in range(1, 31):
        if s == 15:
            assert wait(lambda: mon.writer.written >= 100)
            own_postgres.restart(down=1.0)          # connections cut; messages keep coming meanwhile
        for d in range(10):
            c.publish(topic(f"p{d}", "telemetry", "pgr"), payload(f"p{d}", telemetry_body(p95=float(s)), seq=s,
                                                                  fleet="pgr"), qos=1)
        time.sleep(0.05)
    assert wait(lambda: mon.stats()["accepted"] == 310 and mon.flushed())
    stats = mon.stats()["history"]
    mon.stop()
    c.disconnect()
    c.loop_stop()
    assert stats["dropped"] == 0 and stats["written"] == 310 and stats["write_errors"] >= 1
    h = open_history(url)
    rows = h.status(fleet="pgr")
    assert len(rows) == 10 and all(r["messages"] == 31 and r["lost"] == 0 and r["p95_ms"] == 30.0 for r in rows)
    h.close()


def test_a_dead_database_keeps_a_bounded_backlog_then_catches_up(own_postgres):
    url = own_postgres.new_database()
    writer = HistoryWriter(open_history(url), flush_every=0.02, backlog=10).start()
    own_postgres.restart(down=0)                      # the writer's connection is dead now...
    own_postgres._run("pg_ctl", "-D", str(own_postgres.data), "-m", "fast", "-w", "stop")    # ... and the server
    try:
        first = [message(f"b{i}", "telemetry", telemetry_body(), seq=1, ts=T0, received=T0) for i in range(10)]
        for m in first:
            writer.put(m, None)
        assert wait(lambda: not writer.queue and writer.write_errors >= 2)   # taken, failing, retrying
        for i in range(50):
            writer.put(message(f"c{i}", "telemetry", telemetry_body(), seq=1, ts=T0, received=T0), None)
        assert len(writer.queue) == 10 and writer.dropped == 40
    finally:
        assert own_postgres._pg_start().returncode == 0
    assert wait(lambda: writer.idle() and writer.written == 20)
    writer.stop()
    assert writer.stats()["dropped"] == 40 and writer.stats()["last_error"] is None
    h = open_history(url)
    expected = [f"b{i}" for i in range(10)] + [f"c{i}" for i in range(10)]
    assert sorted(r["device"] for r in h.status()) == sorted(expected)
    h.close()


def test_rows_the_database_refuses_cost_only_themselves(tmp_path):
    url = f"sqlite:///{tmp_path}/h.db"
    h = open_history(url)
    h.db.conn.execute("CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.device = 'bad' "
                      "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END")
    writer = HistoryWriter(h, flush_every=0.02)
    for i in range(30):
        writer.put(message("bad" if i % 10 == 3 else f"ok{i}", "telemetry", telemetry_body(), seq=1, ts=T0,
                           received=T0), None)
    writer.start()
    assert wait(lambda: writer.idle() and writer.written + writer.dropped == 30)
    writer.stop()
    assert (writer.written, writer.refused_by_db, writer.dropped) == (27, 3, 3)
    assert "refused by the test trigger" in writer.stats()["last_error"]
    assert len(open_history(url).status()) == 27


@pytest.mark.parametrize("mode", ["connack", "hangup"])
def test_the_monitor_falls_back_to_mqtt_311(mode):
    from tests.agent.broker311 import Broker311
    b = Broker311(mode)
    mon = Monitor(f"mqtt://127.0.0.1:{b.port}").start()
    try:
        assert mon.wait_connected(15), mon.stats()["last_error"]
        assert mon.stats()["protocol"] == "3.1.1" and b.levels[0] == 5 and b.levels[-1] == 4
    finally:
        mon.stop()
        b.close()
