"""The monitor's terminal view, rendered from a live FleetState that a real Monitor fills from a real mosquitto:
paho devices publishing known figures, and a real agent serving a real bundle."""
from __future__ import annotations

import re
import uuid

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.build import build
from edgepack.fleet.columns import fmt_num
from edgepack.fleet.ingest import Monitor
from edgepack.fleet.tui import render_text
from edgepack_runtime import Runtime
from edgepack_runtime.agent import Agent
from edgepack_runtime.link import MqttLink
from edgepack_runtime.outbox import Outbox

from .monitor_kit import FakeDevice, clear_retained, wait_until


def _row(text: str, device: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(device + " ")]
    assert len(rows) == 1, text
    return rows[0]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"[│┃]", line)]


@pytest.fixture
def fleet():
    return f"m2-{uuid.uuid4().hex[:8]}"


def test_table_from_paho_devices(broker, fleet):
    mon = Monitor(f"mqtt://127.0.0.1:{broker.port}", fleet=fleet).start()
    devices = []
    try:
        assert mon.wait_connected(10)
        a = FakeDevice(broker.port, "cam-a", fleet)
        b = FakeDevice(broker.port, "cam-b", fleet, version="2.0.0", backend="onnxruntime")
        c = FakeDevice(broker.port, "[bold]cam-c", fleet, model="other")     # rich markup in an id: shown as typed
        devices = [a, b, c]
        for d in devices:
            d.online()
        a.telemetry(1.5, 4.4, calls=100, errors=5, ota="downloading")
        a.drift(0.31, alerts=1)
        b.telemetry(12.0, 30.5, calls=250, cost_per_1k=0.0123)
        c.telemetry(3.0, 6.0)
        c.close()                                                            # offline (its clean goodbye)
        assert wait_until(lambda: len(mon.state.snapshot()["devices"]) == 3 and
                          mon.state.snapshot()["counters"]["accepted"] >= 8)
        assert wait_until(lambda: mon.state.device("[bold]cam-c", fleet)["online"] is False)

        text = render_text(mon.state.snapshot(sort="-p95_ms"), mon.stats(), width=220)
        assert "2/3 devices online · 1 with drift alerts" in text
        assert f"mqtt://127.0.0.1:{broker.port}" in text and "connected" in text
        row_a = _cells(_row(text, "cam-a"))
        assert row_a[:5] == ["cam-a", fleet, "online", "clf 1.0.0", "litert"]
        assert row_a[5:11] == ["1.5", "4.4", "10.0", "4.8%", "1 alert psi 0.31", "downloading"]
        row_b = _cells(_row(text, "cam-b"))
        assert row_b[3:9] == ["clf 2.0.0", "onnxruntime", "12.0", "30.5", "25.0", "0.0%"]
        assert row_b[-1] == "0.0123"                                         # cost/1k: shown when reported
        assert _cells(_row(text, "[bold]cam-c"))[2] == "offline"
        order = [line.split(" ")[0] for line in text.splitlines() if line.startswith(("cam-", "[bold]"))]
        assert order == ["cam-b", "[bold]cam-c", "cam-a"]                    # -p95_ms: 30.5, 6.0, 4.4

        only = render_text(mon.state.snapshot(model="other"), width=220)
        assert "[bold]cam-c" in only and "cam-a" not in only and "0/1 devices online" in only
    finally:
        for d in devices[:2]:
            d.close()
        clear_retained(broker.port, devices)
        mon.stop()


def test_row_limit_says_how_many_more(broker, fleet):
    mon = Monitor(f"mqtt://127.0.0.1:{broker.port}", fleet=fleet).start()
    devices = []
    try:
        assert mon.wait_connected(10)
        devices = [FakeDevice(broker.port, f"d{i}", fleet) for i in range(4)]
        for i, d in enumerate(devices):
            d.online()
            d.telemetry(1.0 + i, 2.0 + i)
        assert wait_until(lambda: mon.state.snapshot()["counters"]["accepted"] >= 8)
        text = render_text(mon.state.snapshot(sort="-p50_ms"), limit=2, width=200)
        assert [line.split(" ")[0] for line in text.splitlines() if re.match(r"d\d ", line)] == ["d3", "d2"]
        assert "2 more devices" in text
    finally:
        for d in devices:
            d.close()
        clear_retained(broker.port, devices)
        mon.stop()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("monitor")
    rng = np.random.default_rng(5)
    w = nh.from_array(rng.standard_normal((4, 8)).astype(np.float32), "W")
    g = h.make_graph([h.make_node("Gemm", ["x", "W"], ["logits"], transB=1), h.make_node("Softmax", ["logits"], ["p"])],
                     "clf", [h.make_tensor_value_info("x", TP.FLOAT, [1, 8])],
                     [h.make_tensor_value_info("p", TP.FLOAT, [1, 4])], [w])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), d / "clf.onnx")
    samples = [{"x": rng.standard_normal((1, 8)).astype(np.float32)} for _ in range(50)]
    return build(d / "clf.onnx", targets=["cpu"], samples=samples, out=d / "clf.edgepack").path


def test_table_from_a_real_agent(broker, fleet, bundle, tmp_path):
    mon = Monitor(f"mqtt://127.0.0.1:{broker.port}", fleet=fleet).start()
    link = MqttLink(host="127.0.0.1", port=broker.port, device_id="agent-1", fleet=fleet,
                    outbox=Outbox(tmp_path / "o.db"), backoff_base=0.05)
    try:
        assert mon.wait_connected(10)
        x = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
        with Agent(Runtime.open(bundle), sink=link, telemetry_interval=0.3) as agent:
            assert link.connected.wait(10)
            for _ in range(40):
                agent.infer({"x": x})
            assert wait_until(lambda: (mon.state.device("agent-1", fleet) or {}).get("calls"))
            text = render_text(mon.state.snapshot(), width=220)
            row = mon.state.device("agent-1", fleet)
        cells = _cells(_row(text, "agent-1"))
        assert cells[:5] == ["agent-1", fleet, "online", f"clf {row['version']}", "litert"]
        assert row["p50_ms"] > 0 and cells[5] == fmt_num(row["p50_ms"]) and cells[6] == fmt_num(row["p95_ms"])
        assert row["throughput"] > 0 and cells[7] == fmt_num(row["throughput"]) and cells[8] == "0.0%"
        assert wait_until(lambda: mon.state.device("agent-1", fleet)["online"] is False)   # the agent's goodbye
        assert _cells(_row(render_text(mon.state.snapshot(), width=220), "agent-1"))[2] == "offline"
    finally:
        mon.stop()
        clear_retained(broker.port, [f"edgepack/v1/{fleet}/agent-1"])
