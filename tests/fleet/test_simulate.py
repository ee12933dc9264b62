"""The fleet simulator (issue #13, item 5): real agents with real inference on a real mosquitto; drift,
latency spikes, crashes (last will) and network cuts (store-and-forward) seen from a plain subscriber."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh
from typer.testing import CliRunner

from edgepack.build import build
from edgepack.cli.main import app
from edgepack.errors import EdgepackError
from edgepack.fleet.siminputs import from_npz, input_stream
from edgepack.fleet.simulate import SimSettings, Simulator
from edgepack_runtime import Runtime
from edgepack_runtime.bundle import Bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A small classifier built by edgepack (TFLite target, drift baseline from 200 samples)."""
    rng = np.random.default_rng(5)
    d = tmp_path_factory.mktemp("sim")
    w = nh.from_array(rng.standard_normal((4, 8)).astype(np.float32), "W")
    g = h.make_graph([h.make_node("Gemm", ["x", "W"], ["logits"], transB=1), h.make_node("Softmax", ["logits"], ["p"])],
                     "clf", [h.make_tensor_value_info("x", TP.FLOAT, [1, 8])],
                     [h.make_tensor_value_info("p", TP.FLOAT, [1, 4])], [w])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), d / "clf.onnx")
    samples = [{"x": rng.standard_normal((1, 8)).astype(np.float32)} for _ in range(200)]
    return build(d / "clf.onnx", targets=["cpu"], samples=samples, out=d / "clf.edgepack").path


def bodies(sub, device: str, kind: str) -> list[dict]:
    return [b for t, b, _ in list(sub.messages) if t.endswith(f"/{device}/{kind}") and isinstance(b, dict)]


def settle(sub, pred, timeout=15.0):
    assert sub.wait_for(pred, timeout), "timed out"


def test_a_fleet_of_real_agents(bundle, broker, subscribe, tmp_path):
    sub = subscribe("edgepack/v1/simt/#")
    sim = Simulator(SimSettings(devices=4, bundle=bundle, broker=f"mqtt://127.0.0.1:{broker.port}", fleet="simt",
                                duration=None, rate=25, telemetry_interval=0.5, drift=3.0, drift_share=0.5,
                                drift_window=1.5, power_watts=5.0, cost_per_hour=0.36, runtimes=1,
                                workdir=tmp_path / "w"))
    ids = [f"sim-{i:04d}" for i in range(1, 5)]
    try:
        sim.start()
        drifting = {d.id for d in sim.devices if d.drifting}
        assert len(drifting) == 2 and sim.stats()["inputs"] == "the drift baseline's bins"
        settle(sub, lambda: all(len(bodies(sub, d, "drift")) >= 2 for d in ids))
        # the shared (locked) TFLite interpreter answers every device right while the feeders hammer it
        x = np.random.default_rng(1).standard_normal((1, 8)).astype(np.float32)
        want = Runtime.open(bundle).run({"x": x})["p"]
        for dev in sim.devices:
            np.testing.assert_allclose(dev.agent.infer({"x": x})["p"], want, rtol=1e-6)
    finally:
        sim.stop()
    stats = sim.stats()
    assert stats["answered"] == stats["sent"] > 50 and stats["errors"] == stats["busy"] == 0
    for d in ids:
        states = [b["state"] for b in bodies(sub, d, "state")]
        assert states[0] == "online" and states[-1] == "offline"          # birth, and a clean goodbye at the end
        tel = bodies(sub, d, "telemetry")
        seqs = [b["seq"] for b in tel]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        busy = [t["telemetry"] for t in tel if t["telemetry"]["calls"]]
        assert busy and all(t["model"] == "clf" and t["backend"] == "litert" for t in busy)
        t = busy[-1]
        # per prediction: queue requests, or backend calls when more (the test's own direct agent.infer above
        # is a call without a queue request; in a short last period it can outnumber them)
        n = max(t["requests"], t["calls"])
        assert t["energy_j_per_1k"] == pytest.approx(5.0 * t["period_s"] / n * 1000, rel=1e-3)
        alerted = {a["tensor"] for b in bodies(sub, d, "drift") for a in b["drift"]["alerts"]}
        assert ("x" in alerted) == (d in drifting), (d, alerted)      # only the drifting devices alert on x


def test_crashes_and_network_cuts(bundle, broker, subscribe, tmp_path):
    sub = subscribe("edgepack/v1/simf/#")
    sim = Simulator(SimSettings(devices=3, bundle=bundle, broker=f"mqtt://127.0.0.1:{broker.port}", fleet="simf",
                                duration=None, rate=20, telemetry_interval=0.3, relay=True, latency_spikes=0.3,
                                spike_ms=40, workdir=tmp_path / "w"))
    a, b = "sim-0001", "sim-0002"
    try:
        sim.start()
        settle(sub, lambda: all(len(bodies(sub, d, "telemetry")) >= 2 for d in (a, b)))
        online = [m for m in bodies(sub, a, "state") if m["state"] == "online"][-1]
        before = max(m["seq"] for m in bodies(sub, a, "telemetry"))
        sim.crash(a, downtime=1.0)
        settle(sub, lambda: any(m["state"] == "offline" for m in bodies(sub, a, "state")))
        will = [m for m in bodies(sub, a, "state") if m["state"] == "offline"][0]
        assert will["ts"] < online["ts"]             # the will, written before connecting: not a goodbye
        settle(sub, lambda: bodies(sub, a, "state")[-1]["state"] == "online")        # restarted by itself
        settle(sub, lambda: max(m["seq"] for m in bodies(sub, a, "telemetry")) > before)
        assert sim.stats()["restarts"] == 1

        sim.cut(b, seconds=2.0)
        settle(sub, lambda: bodies(sub, b, "state")[-1]["state"] == "offline")
        settle(sub, lambda: (sim.device(b).agent.sink.status()["outbox"]["queued"] > 0), 5)  # waiting on disk
        settle(sub, lambda: bodies(sub, b, "state")[-1]["state"] == "online")
        settle(sub, lambda: sim.device(b).agent.sink.status()["outbox"]["queued"] == 0)
    finally:
        sim.stop()
    seqs = sorted({m["seq"] for m in bodies(sub, b, "telemetry")})
    assert seqs == list(range(seqs[0], seqs[-1] + 1))      # store-and-forward: nothing lost during the cut
    stats = sim.stats()
    assert stats["crashes"] == stats["cuts"] == 1 and stats["spikes"] > 0
    p95 = [m["telemetry"]["latency_ms"]["p95"] for m in bodies(sub, b, "telemetry") if m["telemetry"]["calls"] > 5]
    assert max(p95) > 15                               # the spikes (40 ms x 0.5..1.5) reach the telemetry


def test_the_command_line(bundle, broker, subscribe):
    sub = subscribe("edgepack/v1/simc/#")
    runner = CliRunner()
    args = ["fleet", "simulate", "--devices", "2", "--bundle", str(bundle), "--broker",
            f"mqtt://127.0.0.1:{broker.port}", "--fleet", "simc", "--rate", "10", "--telemetry-interval", "0.5"]
    result = runner.invoke(app, args + ["--duration", "2", "--json", "--cost-per-hour", "1.5"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["devices"] == 2 and stats["answered"] > 10 and stats["states"] == {"down": 2}
    settle(sub, lambda: all(bodies(sub, d, "telemetry") for d in ("sim-0001", "sim-0002")))
    assert "cost_per_1k" in bodies(sub, "sim-0001", "telemetry")[-1]["telemetry"]
    bad = runner.invoke(app, args + ["--latency-spikes", "2"])
    assert bad.exit_code == 1 and "latency_spikes must be a share in [0, 1]" in bad.output
    bad = runner.invoke(app, ["fleet", "simulate", "-n", "1", "--bundle", str(bundle), "--broker", "http://x"])
    assert bad.exit_code == 1 and "mqtt://HOST:PORT" in bad.output


def test_inputs_from_an_npz_and_from_the_baseline(bundle, tmp_path):
    b = Bundle.open(bundle)
    rows = np.random.default_rng(2).standard_normal((30, 8)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=rows)
    pool = from_npz(tmp_path / "in.npz", b.manifest["inputs"])
    assert len(pool) == 30 and pool[3]["x"].shape == (1, 8) and np.array_equal(pool[3]["x"][0], rows[3])
    np.savez(tmp_path / "bad.npz", x=rows[:, :5])
    with pytest.raises(EdgepackError, match=r"'x' has shape \[30, 1, 5\], not \[N, \*\[1, 8\]\]"):
        from_npz(tmp_path / "bad.npz", b.manifest["inputs"])
    with pytest.raises(EdgepackError, match="no array 'x'"):
        np.savez(tmp_path / "other.npz", y=rows)
        from_npz(tmp_path / "other.npz", b.manifest["inputs"])
    stream = input_stream(b, None, seed=0, shift=2.0, at=0.0)
    base = json.loads(b.read(b.manifest["drift_baseline"]))["inputs"]["x"]
    values = np.concatenate([p["x"].ravel() for p in stream.pool])
    share = np.bincount(np.searchsorted(base["edges"], values, side="right"), minlength=16) / values.size
    assert np.all(np.abs(share - 1 / 16) < 0.02)                     # the baseline's 16 quantile bins, evenly
    rng = np.random.default_rng(0)
    drifted = np.concatenate([stream.draw(rng, True, 1.0)["x"].ravel() for _ in range(200)])
    assert drifted.mean() == pytest.approx(2.0 * base["std"], abs=0.3)     # shifted by 2 standard deviations


def test_simulated_devices_take_a_flash_update(bundle, broker, subscribe, tmp_path):
    """With ota, each simulated device has its own A/B state folder: `edgepack flash` updates it like a real one
    (health check, hot swap to its own Runtime of the new bundle), and its telemetry then names the new version."""
    from edgepack.fleet.flash import flash
    src = Path(bundle).parent / "clf.onnx"
    rng = np.random.default_rng(9)
    v2 = build(src, targets=["cpu"], version="2", out=tmp_path / "v2.edgepack",
               samples=[{"x": rng.standard_normal((1, 8)).astype(np.float32)} for _ in range(50)]).path
    sub = subscribe("edgepack/v1/simo/#")
    sim = Simulator(SimSettings(devices=2, bundle=bundle, broker=f"mqtt://127.0.0.1:{broker.port}", fleet="simo",
                                duration=None, rate=5, telemetry_interval=0.5, ota=True, workdir=tmp_path / "w"))
    try:
        sim.start()
        settle(sub, lambda: all(bodies(sub, d, "telemetry") for d in ("sim-0001", "sim-0002")))
        results = flash(v2, broker=f"mqtt://127.0.0.1:{broker.port}", fleet="simo")
        assert sorted((r["device"], r["state"]) for r in results) == [("sim-0001", "committed"),
                                                                      ("sim-0002", "committed")], results
        settle(sub, lambda: all(bodies(sub, d, "telemetry")[-1]["telemetry"]["model_version"] == "2"
                                for d in ("sim-0001", "sim-0002")))
        x = np.ones((1, 8), np.float32)
        for dev in sim.devices:
            assert dev.agent.rt.owned and dev.agent.rt.bundle.manifest["model"]["version"] == "2"
            np.testing.assert_allclose(dev.agent.infer({"x": x})["p"], Runtime.open(v2).run({"x": x})["p"], rtol=1e-6)
    finally:
        sim.stop()
    assert sim.stats()["errors"] == 0


def test_cost_per_prediction_reaches_fleet_status(bundle, broker, tmp_path):
    """Simulated devices with a power draw and a price: the monitor's history and `fleet status` show each
    device's energy and cost per 1,000 predictions (both from the same period: their ratio is W / price per s)."""
    from edgepack.fleet.ingest import Monitor
    url = f"sqlite:///{tmp_path}/history.db"
    mon = Monitor(f"mqtt://127.0.0.1:{broker.port}", history=url, fleet="simcost").start()
    assert mon.wait_connected(10)
    sim = Simulator(SimSettings(devices=2, bundle=bundle, broker=f"mqtt://127.0.0.1:{broker.port}", fleet="simcost",
                                duration=None, rate=20, telemetry_interval=0.5, power_watts=6.5, cost_per_hour=0.01))
    try:
        sim.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _costed(mon.state.snapshot(fleet="simcost")["devices"]):
            time.sleep(0.1)
    finally:
        sim.stop()
        mon.stop()
    result = CliRunner().invoke(app, ["fleet", "status", "--history", url, "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["device"]: r for r in json.loads(result.stdout)["devices"] if r["fleet"] == "simcost"}
    assert sorted(rows) == ["sim-0001", "sim-0002"]
    for r in rows.values():
        assert r["cost_per_1k"] > 0 and r["energy_j_per_1k"] / r["cost_per_1k"] == pytest.approx(6.5 * 3600 / 0.01)


def _costed(rows) -> bool:
    return len(rows) == 2 and all(r.get("cost_per_1k") for r in rows)
