"""A short soak of the agent (issue #11): HTTP inference, idle and garbage connections, a command flood and three
broker restarts at once; afterwards the broker side has every sequence number and every thread is alive.
The minutes-long run is ``benchmarks/bench_agent_soak.py`` (figures in benchmarks/RESULTS.md)."""
from __future__ import annotations

from tests.testing.kit import load_benchmark


def test_short_soak_loses_nothing_and_keeps_every_thread(mosquitto_bin, tmp_path):
    soak = load_benchmark("bench_agent_soak").soak
    f = soak(16.0, restart_every=4.0, down=0.7, clients=2, idle=20, workdir=tmp_path)
    assert f["broker_restarts"] >= 3, f
    assert f["complete"] and f["missing"] == 0 and f["outbox_drained"], f
    assert f["published"] > 20 and f["received_unique"] == f["published"], f
    assert not f["thread_problems"], f
    assert set(f["threads"]) == {"edgepack-worker", "edgepack-telemetry", "edgepack-drift", "edgepack-mqtt",
                                 "edgepack-http", "edgepack-http-busy"}, f
    assert all(t["running"] and t["restarts"] == 0 for t in f["threads"].values()), f
    assert f["requests"].get(200, 0) > 20 and not f["requests"].get(500), f     # inference went on, no failures
    assert f["idle_connections_opened"] > 0 and f["commands_rate_limited"] > 0, f
