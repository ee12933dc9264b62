"""``edgepack fleet status|history|drift`` as a person reads them (tables) and their errors (what is wrong and
what to do next), on a SQLite history filled with a small fleet's messages."""
from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from edgepack.cli.main import app

from .envelopes import message, telemetry_body
from .test_history import BASELINE, T0, fill, fleet_messages


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cli") / "fleet.db"
    fill(f"sqlite:///{path}", fleet_messages())
    return f"sqlite:///{path}"


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.output


def test_status_table_lists_every_device(url):
    out = run("fleet", "status", "--history", url)
    assert "6 device(s)" in out
    for i in range(6):
        assert f"d{i}" in out
    assert "offline" in out and "online" in out and "kws 1.0" in out and "committed" in out and "cost/1k" in out
    only = run("fleet", "status", "--history", url, "--fleet", "g")
    assert "2 device(s)" in only and "d4" in only and "d0" not in only


def test_status_from_the_environment_and_sorted(url, monkeypatch):
    monkeypatch.setenv("EDGEPACK_HISTORY", url)
    rows = json.loads(run("fleet", "status", "--json", "--sort", "-error_rate"))["devices"]
    rates = [r["error_rate"] for r in rows]
    assert rates == sorted(rates, reverse=True) and len(rows) == 6
    out = run("fleet", "status", "--sort", "nonsense", code=1)
    assert "cannot sort by 'nonsense'" in out


def test_history_table_and_json(url):
    out = run("fleet", "history", "d2", "--history", url, "--metric", "p50_ms")
    assert "p50_ms" in out and time.strftime("%Y-%m-%d", time.gmtime(T0)) in out
    doc = json.loads(run("fleet", "history", "d2", "--history", url, "--metric", "calls", "--json"))
    assert doc["device"] == "d2" and doc["metric"] == "calls" and len(doc["points"]) == 20
    recent = json.loads(run("fleet", "history", "d2", "--history", url, "--metric", "calls", "--json",
                            "--since", str(T0 + 100)))
    assert [p[0] for p in recent["points"]] == [p[0] for p in doc["points"] if p[0] >= T0 + 100]
    hour = json.loads(run("fleet", "history", "d2", "--history", url, "--metric", "calls", "--json", "--since", "1h"))
    assert hour["points"] == [p for p in doc["points"] if p[0] >= time.time() - 3600]   # 1h ago by this clock


def test_history_errors_say_what_to_do(url, tmp_path):
    assert "unknown metric 'speed'" in run("fleet", "history", "d2", "--history", url, "--metric", "speed", code=1)
    assert "no series stored for device 'zz'" in run("fleet", "history", "zz", "--history", url, code=1)
    assert "is not a duration" in run("fleet", "history", "d2", "--history", url, "--since", "yesterday", code=1)
    out = run("fleet", "history", "d2", "--history", f"sqlite:///{tmp_path}/missing.db", code=1)
    assert "no history at" in out and "edgepack monitor" in out
    assert "history URL must be" in run("fleet", "status", "--history", "redis://x", code=1)


def test_drift_without_a_bundle_merges_counts_per_model(url):
    out = run("fleet", "drift", "--history", url)
    assert "model kws" in out and "model det" in out and "give the bundle (--bundle)" in out
    doc = json.loads(run("fleet", "drift", "--history", url, "--json", "--fleet", "f"))
    assert not doc["judged"] and set(doc["models"]) == {"kws", "det"}
    assert sum(m["devices"] for m in doc["models"].values()) == 4


def test_drift_table_with_alerts(tmp_path):
    # two devices whose windows pile up in the first bin: fleet-wide psi far above the threshold
    msgs = [message(f"z{i}", "drift", {"drift": {"calls": 600, "alerts": [{"tensor": "x", "kind": "inputs",
                                                                       "metrics": ["psi"]}],
                                                 "tensors": {"x": {"counts": [500, 50, 30, 20]}}}},
                    seq=2, ts=T0, received=T0) for i in range(2)]
    msgs += [message(f"z{i}", "telemetry", telemetry_body(model="kws"), seq=1, ts=T0 - 5, received=T0 - 5)
             for i in range(2)]
    url = f"sqlite:///{tmp_path}/d.db"
    fill(url, msgs)
    from edgepack.fleet.history import open_history
    h = open_history(url)
    report = h.drift(model="kws", baseline=BASELINE)
    h.close()
    assert report["devices"] == 2 and report["alerts"][0]["tensor"] == "x" and "psi" in report["alerts"][0]["metrics"]
    assert report["tensors"]["x"]["counts"] == [1000, 100, 60, 40]
    from edgepack.cli.fleet import _print_drift
    from edgepack.cli.common import out_console
    with out_console.capture() as cap:
        _print_drift(report | {"model": "kws", "version": "1.0"})
    text = cap.get()
    assert "2 device(s)" in text and "device alert" in text and "z0" in text and "psi" in text


def test_fleet_help_lists_the_commands():
    out = run("fleet", "--help")
    for name in ("status", "history", "drift"):
        assert name in out
