"""Cost per prediction (issue #13, item 6): ``edgepack-device bench`` on real backends in child processes, the
agent's ``power_watts`` / ``cost_per_hour`` settings turned into telemetry, and the device profile fields."""
from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

import rt_helpers
from edgepack_runtime.agent import Agent
from edgepack_runtime.cli import build_parser, main
from edgepack_runtime.cost import cost_fields
from edgepack_runtime.errors import EdgepackError
from edgepack_runtime.runtime import Runtime
from edgepack_runtime.sink import JsonLinesSink

# both backends run every bench; tests/runtime/conftest.py fails the session under CI=true when one is missing
pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("ai_edge_litert", "onnxruntime")),
                                reason="needs ai-edge-litert and onnxruntime")


def _bench(capsys, *argv) -> tuple[int, dict | str]:
    code = main(["bench", *map(str, argv)])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if "--json" in argv and code == 0 else out.out + out.err)


def test_bench_every_backend_and_thread_count(add_bundle, capsys):
    code, report = _bench(capsys, add_bundle, "--seconds", "0.3", "--threads", "2,1", "--json",
                          "--power-watts", "5", "--cost-per-hour", "0.36")
    assert code == 0
    got = [(r["backend"], r["target"], r["threads"]) for r in report["runs"]]
    assert got == [("litert", "cpu", 1), ("litert", "cpu", 2), ("onnxruntime", "ref", 1), ("onnxruntime", "ref", 2)]
    for r in report["runs"]:
        assert "error" not in r, r
        assert r["calls"] > 10 and r["elapsed_s"] >= 0.3
        assert 0 < r["p50_ms"] <= r["p99_ms"] and r["throughput_per_s"] == pytest.approx(r["calls"] / r["elapsed_s"])
        assert r["peak_rss_mb"] > r["rss_before_mb"] > 5 and r["model_rss_mb"] > 0     # loading costs memory
        # full load: every second of the run was spent predicting, so J per 1k = W x s / calls x 1000
        assert r["energy_j_per_1k"] == pytest.approx(5 * r["elapsed_s"] / r["calls"] * 1000)
        assert r["cost_per_1k"] == pytest.approx(0.36 / 3600 * r["elapsed_s"] / r["calls"] * 1000)
    assert report["power_watts"] == 5 and report["cost_per_hour"] == 0.36


def test_bench_one_backend_as_a_table(add_bundle, capsys):
    code, text = _bench(capsys, add_bundle, "--seconds", "0.2", "--threads", "1", "--backend", "onnxruntime")
    assert code == 0
    rows = [line.split() for line in text.splitlines()[2:]]
    assert [r[:3] for r in rows] == [["onnxruntime", "ref", "1"]]
    assert float(rows[0][3]) <= float(rows[0][4]) and float(rows[0][5]) > 0   # p50 <= p99, throughput
    assert "J/1k" not in text                                              # no power given: no energy column


@pytest.mark.parametrize("argv,code,said", [
    (["--threads", "0"], 2, "thread counts in [1, 1024]"),
    (["--threads", "a,b"], 2, "numbers like 1,2,4"),
    (["--seconds", "0"], 1, "--seconds must be in (0, 3600]"),
    (["--power-watts", "-1"], 1, "--power-watts must be in [0, 1000000]"),
    (["--backend", "tflite-runtime"], 8, "not installed"),
])
def test_bench_bad_arguments_say_what_is_wrong(add_bundle, capsys, argv, code, said):
    try:
        got = main(["bench", str(add_bundle), *argv])
    except SystemExit as exc:                    # argparse refuses before main's handler
        got = exc.code
    assert got == code
    assert said in capsys.readouterr().err


def test_bench_refuses_a_tampered_bundle(add_bundle, tmp_path, capsys):
    data = bytearray(add_bundle.read_bytes())
    i = data.index(b"TFL3")
    data[i + 40] ^= 0xFF                         # a byte of the TFLite model: its sha256 no longer matches
    bad = tmp_path / "bad.edgepack"
    bad.write_bytes(bytes(data))
    assert main(["bench", str(bad), "--seconds", "0.1"]) != 0
    assert "sha256" in capsys.readouterr().err


def test_cost_fields_are_over_wall_time():
    snap = {"period_s": 10.0, "calls": 50, "requests": 200, "latency_ms": {"mean": 20.0}}  # 4-row micro-batches
    got = cost_fields(snap, power_watts=6.0, cost_per_hour=0.72)
    assert got["busy_share"] == pytest.approx(0.1)                  # 50 calls x 20 ms in 10 s
    assert got["energy_j_per_1k"] == pytest.approx(6.0 * 10 / 200 * 1000)       # 300 J per 1,000 predictions
    assert got["cost_per_1k"] == pytest.approx(0.72 / 3600 * 10 / 200 * 1000)   # 0.01 per 1,000
    idle = cost_fields({"period_s": 10.0, "calls": 0, "requests": 0, "latency_ms": {"mean": 0.0}},
                       power_watts=6.0, cost_per_hour=1.0)
    assert idle == {"busy_share": 0.0, "energy_j_per_1k": None, "cost_per_1k": None}
    assert cost_fields(snap) == {"busy_share": pytest.approx(0.1)}            # not configured: not reported


def test_agent_telemetry_carries_energy_and_cost(add_bundle, tmp_path):
    sink = JsonLinesSink(tmp_path / "t.jsonl", device_id="d1")
    x = np.random.default_rng(0).standard_normal(rt_helpers.NCHW).astype(np.float32)
    with Agent(Runtime.open(add_bundle), sink=sink, telemetry_interval=3600, drift=False, power_watts=4.0,
               cost_per_hour=0.09) as agent:
        for _ in range(40):
            agent.infer({"x": x})
    tel = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[-1])["telemetry"]
    assert tel["requests"] == 40 and tel["calls"] == 40
    assert tel["energy_j_per_1k"] == pytest.approx(4.0 * tel["period_s"] / 40 * 1000, rel=1e-6)
    assert tel["cost_per_1k"] == pytest.approx(0.09 / 3600 * tel["period_s"] / 40 * 1000, rel=1e-6)
    assert 0 < tel["busy_share"] < 1 and math.isfinite(tel["energy_j_per_1k"])


def test_agent_settings_power_and_cost(add_bundle, tmp_path):
    from edgepack_runtime import agentcli
    (tmp_path / "a.toml").write_text(f'bundle = "{add_bundle}"\npower_watts = 6.5\n')
    conf = agentcli.settings(build_parser().parse_args(["agent", "--config", str(tmp_path / "a.toml"),
                                                        "--cost-per-hour", "0.02"]))
    assert conf["power_watts"] == 6.5 and conf["cost_per_hour"] == 0.02
    agent = agentcli.make_agent(conf)
    assert (agent.power_watts, agent.cost_per_hour) == (6.5, 0.02)
    with pytest.raises(EdgepackError, match=r"--power-watts must be in \[0, 100000\]"):
        agentcli.settings(build_parser().parse_args(["agent", "--bundle", "b", "--power-watts", "-3"]))


def test_device_profiles_state_power_and_cost(tmp_path, monkeypatch):
    from edgepack import devices
    from edgepack.errors import EdgepackError
    base = 'name = "{n}"\ndescription = "d"\narch = "arm64"\nmemory_mb = 1024\ntargets = ["cpu"]\n'
    monkeypatch.setenv("EDGEPACK_DEVICES", str(tmp_path))
    (tmp_path / "a.toml").write_text(base.format(n="a") + '[power]\nwatts = 6.5\n[cost]\nper_hour = 0.01\n'
                                     'currency = "EUR"\n')
    (tmp_path / "b.toml").write_text(base.format(n="b"))
    devices.profiles.cache_clear()
    try:
        found = devices.profiles()
        assert devices.cost_settings(found["a"]) == {"power_watts": 6.5, "cost_per_hour": 0.01}
        assert devices.cost_settings(found["b"]) == {}
        for bad in ('[power]\nwatts = -1\n', '[power]\nwatts = "6"\n', '[cost]\nper_hour = nan\n', 'power = 5\n',
                    '[cost]\nper_hour = 1\ncurrency = 5\n'):
            (tmp_path / "b.toml").write_text(base.format(n="b") + bad)
            devices.profiles.cache_clear()
            with pytest.raises(EdgepackError, match=r"device profile .*b\.toml.*(power|cost)"):
                devices.profiles()
    finally:
        devices.profiles.cache_clear()
