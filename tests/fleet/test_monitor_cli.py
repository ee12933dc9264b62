"""``edgepack monitor`` through typer's CliRunner on a real mosquitto: --headless (JSON lines, history in
SQLite), the terminal view for a bounded time, and clear errors for bad options."""
from __future__ import annotations

import json
import threading
import uuid

import pytest
from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack.fleet.history import open_history
from tests.agent.conftest import free_port

from .monitor_kit import FakeDevice, clear_retained

runner = CliRunner()


class Publisher:
    """Devices that come online (retained) and send telemetry every 0.2 s until stopped."""

    def __init__(self, port: int, fleet: str, names: list[str]):
        self.devices = [FakeDevice(port, n, fleet) for n in names]
        for d in self.devices:
            d.online()
        self.stop, self.port = threading.Event(), port
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        step = 0
        while not self.stop.wait(0.2):
            for i, d in enumerate(self.devices):
                d.telemetry(2.0 + i, 5.0 + i, calls=40 * (i + 1), errors=i)
            step += 1

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for d in self.devices:
            d.close()
        clear_retained(self.port, self.devices)


@pytest.fixture
def fleet():
    return f"m2c-{uuid.uuid4().hex[:8]}"


def test_headless_logs_json_lines_and_stores_history(broker, fleet, tmp_path):
    pub = Publisher(broker.port, fleet, ["gw-1", "gw-2"])
    url = f"sqlite:///{tmp_path}/fleet.db"
    try:
        result = runner.invoke(app, ["monitor", "--broker", f"mqtt://127.0.0.1:{broker.port}", "--headless",
                                     "--history", url, "--fleet", fleet, "--duration", "2.5", "--stats-every", "1",
                                     "--json"])
    finally:
        pub.close()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in lines][-1] == "stopped" and len(lines) >= 3
    assert all(e["connected"] for e in lines[:-1])
    last = lines[-1]
    assert last["devices"] == 2 and last["online"] == 2 and last["rejected"] == 0 and last["accepted"] >= 6
    assert last["history"]["written"] == last["accepted"] and last["history"]["dropped"] == 0
    history = open_history(url)
    try:
        rows = {r["device"]: r for r in history.status(fleet)}
    finally:
        history.close()
    assert rows["gw-1"]["p50_ms"] == 2.0 and rows["gw-2"]["p95_ms"] == 6.0 and rows["gw-2"]["error_rate"] == 1 / 81


def test_terminal_view_for_a_bounded_time(broker, fleet):
    pub = Publisher(broker.port, fleet, ["gw-a", "gw-b"])
    try:
        result = runner.invoke(app, ["monitor", "--broker", f"mqtt://127.0.0.1:{broker.port}", "--no-history",
                                     "--fleet", fleet, "--sort", "-p95_ms", "--duration", "2", "--refresh", "0.5"],
                               env={"COLUMNS": "200"})
    finally:
        pub.close()
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"edgepack monitor  mqtt://127.0.0.1:{broker.port}  connected" in out
    assert "2/2 devices online" in out
    rows = [line for line in out.splitlines() if line.startswith("gw-")]
    assert [r.split()[0] for r in rows[-2:]] == ["gw-b", "gw-a"]          # -p95_ms: 6.0, then 5.0
    cells = [c.strip() for c in rows[-1].split("│")]
    assert cells[2:9] == ["online", "clf 1.0.0", "litert", "2.0", "5.0", "4.0", "0.0%"]


def test_unreachable_broker_is_said_and_the_monitor_keeps_trying(tmp_path):
    result = runner.invoke(app, ["monitor", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--headless",
                                 "--no-history", "--duration", "0.5", "--stats-every", "10"])
    assert result.exit_code == 0, result.output
    assert "not connected to mqtt://127.0.0.1:" in result.stderr and "retrying in the background" in result.stderr
    assert "0/0 devices online" in result.stdout and "broker disconnected (" in result.stdout


@pytest.mark.parametrize("args, code, needle", [
    (["--sort", "colour"], 2, "choose one of device"),
    (["--web", "192.168.7.7:8080"], 2, "binds only to loopback"),
    (["--web", "127.0.0.1:port"], 2, "the port must be a number"),
    (["--share-group", "a/b"], 2, "'a/b' is not a name"),
    (["--fleet", "lab/#"], 2, "'lab/#' is not a name"),
])
def test_bad_options_are_refused_clearly(args, code, needle):
    result = runner.invoke(app, ["monitor", "--broker", "mqtt://127.0.0.1:1", "--no-history", *args],
                           env={"COLUMNS": "200"})
    assert result.exit_code == code and needle in result.output, result.output


def test_bad_broker_url():
    result = runner.invoke(app, ["monitor", "--broker", "http://127.0.0.1:1883", "--no-history"])
    assert result.exit_code == 1 and "mqtt://HOST:PORT" in result.output
