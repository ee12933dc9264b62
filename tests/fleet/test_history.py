"""History in SQLite and in a real PostgreSQL server: the same messages give the same answers (``edgepack
fleet status --json`` byte for byte), duplicates are stored once, retention and downsampling by the settings."""
from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack.errors import EdgepackError
from edgepack.fleet.fleetstate import FleetState
from edgepack.fleet.history import HistorySettings, open_history

from .envelopes import drift_body, message, telemetry_body

T0 = 1_800_000_000.0
BASELINE = {"version": 1, "bins": 4, "samples": 100,
            "inputs": {"x": {"edges": [-1.0, 0.0, 1.0], "counts": [250, 250, 250, 250], "n": 1000, "mean": 0.0,
                             "std": 1.0}}, "outputs": {}}


def fleet_messages(seed: int = 3) -> list:
    """A day in a small fleet: births, a will, telemetry with gaps, drift windows, OTA, events, two fleets."""
    rng = random.Random(seed)
    msgs, now = [], T0
    for i in range(6):
        fleet = "f" if i < 4 else "g"
        msgs.append(message(f"d{i}", "state", ts=now, received=now + i * 0.001, fleet=fleet))
        seq = 0
        for k in range(20):
            seq += 1 if rng.random() > 0.1 else 2                       # now and then one lost
            t = now + 10 * (k + 1) + i * 0.01
            idle = k % 7 == 6 or (k == 19 and i % 2)        # no predictions: latency 0 and cost null are not figures
            busy = dict(p50=rng.uniform(1, 3), p95=rng.uniform(3, 9), calls=rng.randint(50, 150), cost_per_1k=0.01 * i)
            figures = dict(p50=0.0, p95=0.0, calls=0, cost_per_1k=None) if idle else busy
            msgs.append(message(f"d{i}", "telemetry", telemetry_body(**figures, errors=rng.randint(0, 3),
                                model="kws" if i % 3 else "det"), seq=seq, ts=t, received=t + 0.2, fleet=fleet))
            if k % 5 == 4:
                seq += 1
                counts = [rng.randint(0, 300) for _ in range(4)]
                msgs.append(message(f"d{i}", "drift", drift_body(counts=counts, psi=rng.random()), seq=seq,
                                    ts=t + 1, received=t + 1.2, fleet=fleet))
        msgs.append(message(f"d{i}", "ota/status", {"update_id": "u1", "state": "committed", "progress": 1.0},
                            seq=seq + 1, ts=now + 300, received=now + 300.1, fleet=fleet))
    msgs.append(message("d1", "state", state="offline", ts=T0, received=T0 + 400))       # d1's will
    msgs.append(message("d2", "events", {"type": "rate_limited"}, seq=99, ts=T0 + 401, received=T0 + 401))
    return msgs


def fill(url: str, msgs: list, batch: int = 37) -> None:
    h = open_history(url)
    for i in range(0, len(msgs), batch):
        h.add(msgs[i:i + batch])
    h.add(msgs[5:60])                                  # delivered twice (resends, retained): stored once
    h.close()


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_sqlite_and_postgresql_give_the_same_fleet_status(tmp_path, pg_url):
    msgs = fleet_messages()
    sqlite_url = f"sqlite:///{tmp_path}/fleet.db"
    fill(sqlite_url, msgs)
    fill(pg_url, msgs)
    for extra in ([], ["--fleet", "f"], ["--model", "kws", "--sort", "-p95_ms"]):
        a = cli("fleet", "status", "--history", sqlite_url, "--json", *extra)
        b = cli("fleet", "status", "--history", pg_url, "--json", *extra)
        assert a == b
    rows = json.loads(a)["devices"]
    assert [r["device"] for r in json.loads(cli("fleet", "status", "--history", pg_url, "--json"))["devices"]] == \
        [f"d{i}" for i in range(6)]
    for extra in (["--metric", "p95_ms"], ["--metric", "drift_psi"], ["--metric", "cost_per_1k", "--since", str(T0)]):
        assert cli("fleet", "history", "d3", "--history", sqlite_url, "--json", *extra) == \
            cli("fleet", "history", "d3", "--history", pg_url, "--json", *extra)
    assert cli("fleet", "drift", "--history", sqlite_url, "--json") == cli("fleet", "drift", "--history", pg_url,
                                                                           "--json")
    assert all(r["model"] == "kws" for r in rows) and [r["p95_ms"] for r in rows] == sorted(
        (r["p95_ms"] for r in rows), reverse=True)


def test_status_from_history_matches_the_live_view(history_url):
    msgs = fleet_messages()
    fill(history_url, msgs)
    live = FleetState()
    for m in msgs:
        live.apply(m)
    h = open_history(history_url)
    stored = {r["device"]: r for r in h.status()}
    for row in live.snapshot()["devices"]:
        s = stored[row["device"]]
        assert {k: v for k, v in s.items() if k not in ("messages", "replayed")} == \
            {k: v for k, v in row.items() if k not in ("messages", "replayed")}, row["device"]
        assert s["messages"] == row["messages"]       # the duplicates were stored once, seen once live
    assert stored["d1"]["online"] is False and stored["d0"]["online"] is True
    assert stored["d2"]["last_event"] == "rate_limited" and stored["d0"]["ota_state"] == "committed"
    assert sum(r["lost"] for r in stored.values()) > 0
    assert stored["d1"]["calls"] == 0 and stored["d1"]["p95_ms"] > 0 and stored["d1"]["cost_per_1k"] == 0.01
    h.close()


def test_series_and_drift(history_url):
    msgs = fleet_messages()
    fill(history_url, msgs)
    h = open_history(history_url)
    p95 = h.history("d3", "p95_ms")
    assert len(p95) == 20 - 3 and p95 == sorted(p95)     # three idle periods (k = 6, 13, 19): no latency
    assert [v for _, v in p95] == [m.body["telemetry"]["latency_ms"]["p95"] for m in msgs
                                   if m.device == "d3" and m.kind == "telemetry" and m.body["telemetry"]["calls"]]
    assert h.history("d3", "p95_ms", since=p95[5][0], until=p95[8][0]) == p95[5:8]
    assert h.metrics("d3") == ["calls", "cost_per_1k", "drift_alerts", "drift_psi", "error_rate", "p50_ms",
                               "p95_ms", "p99_ms", "throughput"]
    newest = h.drift_entries(fleet="f")
    assert [e["device"] for e in newest] == ["d0", "d1", "d2", "d3"]
    assert {e["model"] for e in newest} == {"kws", "det"}
    report = h.drift(fleet="f", model="kws", baseline=BASELINE)
    assert report["judged"] and report["devices"] == 2                # d1 and d2 run kws in fleet f
    expected = [sum(e["summary"]["tensors"]["x"]["counts"][b] for e in newest if e["model"] == "kws")
                for b in range(4)]
    assert report["tensors"]["x"]["counts"] == expected
    every = h.drift(fleet="f", model="kws", baseline=BASELINE, since=T0)
    assert every["devices"] == 8 and every["calls"] > report["calls"]   # 4 windows x 2 devices
    assert not h.drift(model="det")["judged"]
    h.close()


def test_retention_and_downsampling(history_url):
    msgs = fleet_messages()
    fill(history_url, msgs)
    h = open_history(history_url, HistorySettings(raw_age=3600, max_age=7 * 86400, bucket=60))
    raw = h.history("d0", "p95_ms")
    done = h.maintain(now=T0 + 3600 + 1000)             # everything is older than raw_age now
    assert done["deleted"]["messages"] == len({(m.device, m.kind, m.seq, m.ts, m.body.get("state")) for m in msgs})
    means = h.history("d0", "p95_ms")
    assert len(means) == len({int(ts // 60) for ts, _ in raw}) < len(raw)
    for start, mean in means:
        inside = [v for ts, v in raw if start <= ts < start + 60]
        assert mean == pytest.approx(sum(inside) / len(inside), rel=1e-12)
    assert h.status()[0]["p95_ms"] is not None                     # the latest messages outlive raw_age
    assert h.maintain(now=T0 + 8 * 86400)["deleted"]["latest"] > 0  # ... but not max_age
    assert h.status() == [] and h.history("d0", "p95_ms") == []
    h.close()


def test_bad_history_urls_say_what_to_do(tmp_path):
    with pytest.raises(EdgepackError, match="sqlite:///PATH or postgresql://"):
        open_history("mysql://x/y")
    with pytest.raises(EdgepackError, match="cannot connect to the history"):
        open_history("postgresql://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(app, ["fleet", "status", "--history", f"sqlite:///{tmp_path}/none.db"])
    assert result.exit_code != 0 and "no history at" in result.output and "edgepack monitor" in result.output
    with pytest.raises(ValueError, match="raw_age <= max_age"):
        HistorySettings(raw_age=10, max_age=5)


def test_retention_settings_ride_in_the_url(history_url):
    h = open_history(f"{history_url}?max_age=7d&raw_age=1h&bucket=5m")
    assert (h.settings.max_age, h.settings.raw_age, h.settings.bucket) == (7 * 86400, 3600, 300)
    h.add(fleet_messages()[:40])
    assert h.maintain(now=T0 + 2 * 3600)["deleted"]["messages"] == 40 and h.history("d0", "calls")
    h.close()
    assert open_history(f"{history_url}?max_age=1d").settings.raw_age == 86400   # raw_age follows a short max_age
    with pytest.raises(EdgepackError, match="max_age='soon' is not a duration"):
        open_history(f"{history_url}?max_age=soon")
    with pytest.raises(EdgepackError, match="raw_age <= max_age"):
        open_history(f"{history_url}?max_age=1h&raw_age=2h")
