"""Shadow testing without a broker: sampling and dropping (a real candidate runtime), agreement figures, the
installer's refusals and its recovery from a broken shadow folder (a real agent with a state folder and a
JSON-lines sink), the offer's new fields under hypothesis, the host's verdict, and the CLI's argument errors."""
from __future__ import annotations

import argparse
import json
import os
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack.fleet.shadow import judge, shadow_block
from edgepack_runtime.agentcli import make_agent
from edgepack_runtime.agentcli import settings as agent_settings
from edgepack_runtime.ota.chunks import MODES, BadMessage, make_offer, parse_offer
from edgepack_runtime.runtime import Runtime
from edgepack_runtime.shadow import Shadow, agreement

from .shadow_kit import CANDIDATE, SERVING, inputs, make_bundle, offline


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("shadow-units")
    return {"v1": make_bundle(d / "v1.edgepack", "1", SERVING), "v2": make_bundle(d / "v2.edgepack", "2", CANDIDATE),
            "wide": make_bundle(d / "wide.edgepack", "w", SERVING, shape=[2, 4])}


def test_share_samples_exactly_and_a_full_queue_drops_and_counts(bundles):
    shadow = Shadow(Runtime.open(bundles["v2"]), share=0.25, queue_size=3, info={"version": "2"})
    xs = inputs(40)
    for x in xs:                                              # the worker is not running yet: the queue fills
        shadow.offer({"x": x}, {"y": x + SERVING}, 1e-4)
    block = shadow.block(reset=False)
    assert shadow.queue.qsize() == 3 and block["dropped"] == 40 // 4 - 3 and block["samples"] == 0
    stop = threading.Event()
    worker = threading.Thread(target=shadow.work, args=(stop,))
    worker.start()
    try:
        assert _until(lambda: shadow.block(reset=False)["samples"] == 3)
        for x in xs[:8]:                                      # 2 of 8 more go through
            shadow.offer({"x": x}, {"y": x + SERVING}, 1e-4)
        assert _until(lambda: shadow.block(reset=False)["samples"] == 5)
    finally:
        stop.set()
        worker.join(5)
    block = shadow.block()
    picked = [xs[i] for i in (3, 7, 11)] + [xs[3], xs[7]]    # every 4th call: the 4th, 8th, 12th; then again
    want = offline(picked, SERVING, CANDIDATE)
    assert block["agreement"]["cosine_mean"] == pytest.approx(want["cosine_mean"], rel=1e-12)
    assert block["agreement"]["max_abs"] == pytest.approx(want["max_abs"], rel=1e-12)
    assert shadow.block()["samples"] == 0 and shadow.block()["total"]["samples"] == 5     # the period was reset
    with pytest.raises(Exception, match="closed"):            # the worker closed the candidate when it ended
        shadow.rt.run({"x": xs[0]})


def _until(pred, timeout=10.0) -> bool:
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end and not pred():
        time.sleep(0.01)
    return pred()


def test_agreement_figures_edge_cases():
    a = np.array([[1.0, 2.0, 3.0]], np.float32)
    assert agreement({"y": a}, {"y": a.copy()})[1:] == (0.0, (1, 1))
    cos, max_abs, top1 = agreement({"y": a}, {"y": np.array([[3.0, 2.0, 1.0]], np.float32)})
    assert top1 == (0, 1) and max_abs == 2.0 and cos == pytest.approx(10 / 14)
    assert agreement({"y": a}, {"y": np.array([[np.nan, 2, 3]], np.float32)})[:2] == (0.0, None)
    assert agreement({"k": np.array([5], np.int64)}, {"k": np.array([5], np.int64)})[2] is None   # not class scores
    with pytest.raises(ValueError, match="shape"):
        agreement({"y": a}, {"y": a.reshape(3, 1)})
    with pytest.raises(ValueError, match="no output 'y'"):
        agreement({"y": a}, {"z": a})
    with pytest.raises(ValueError, match="share"):
        Shadow(None, share=1.5)


def _agent(tmp_path, bundle, **conf):
    ns = argparse.Namespace(bundle=str(bundle), state_dir=str(tmp_path / "state"), http_port=0,
                            telemetry_file=str(tmp_path / "events.jsonl"), telemetry_interval=3600.0, **conf)
    return make_agent(agent_settings(ns))


def _lines(tmp_path, kind) -> list[dict]:
    path = tmp_path / "events.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in rows if r["kind"] == kind]


def test_the_installer_refuses_what_cannot_shadow_and_nothing_changes(tmp_path, bundles):
    agent = _agent(tmp_path, bundles["v1"])
    installer = agent.shadows
    st = installer.install(bundles["wide"], update_id="u-wide")
    assert st["state"] == "failed" and st["mode"] == "shadow" and "must take the same inputs" in st["reason"]
    sick = make_bundle(tmp_path / "sick.edgepack", "sick", CANDIDATE, ref=SERVING)   # fails its own samples
    st = installer.install(sick, update_id="u-sick")
    assert st["state"] == "failed" and "shadow refused: health check failed" in st["reason"]
    bad = make_bundle(tmp_path / "bad.edgepack", "bad", CANDIDATE)
    data = bytearray(bad.read_bytes())
    data[len(data) // 3] ^= 0xFF                                        # damaged in transit
    bad.write_bytes(bytes(data))
    st = installer.install(bad, update_id="u-bad")
    assert st["state"] == "failed" and "shadow refused" in st["reason"], st
    assert agent.shadow is None and not (tmp_path / "state" / "shadow").exists()
    assert agent.updater.status()["slots"][agent.updater.status()["active_slot"]]["model"]["version"] == "1"
    st = installer.install(bundles["v2"], update_id="u-good", meta={"shadow_share": 0.5})
    assert st["state"] == "shadowing" and st["shadow_share"] == 0.5 and st["health"]["passed"]
    assert agent.shadow.share == 0.5 and _lines(tmp_path, "events")[-1]["type"] == "shadow_started"
    [thread] = [t for t in threading.enumerate() if t.name == "edgepack-shadow" and t.is_alive()]
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert _until(lambda: os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, base + 19))   # shadow_nice
    agent.start()
    agent.stop()
    assert not thread.is_alive()


def test_a_broken_shadow_folder_is_cleared_at_start_and_the_agent_serves(tmp_path, bundles):
    agent = _agent(tmp_path, bundles["v1"], shadow_share=1.0)
    assert agent.shadows.install(bundles["v2"], update_id="u1")["state"] == "shadowing"
    assert agent.shadow.share == 1.0                                     # the agent's setting: no share offered
    agent.start()
    agent.stop()
    (tmp_path / "state" / "shadow" / "shadow.json").write_text("{not json")
    agent = _agent(tmp_path, bundles["v1"])
    assert agent.shadow is None and not (tmp_path / "state" / "shadow").exists()
    assert "could not start again" in _lines(tmp_path, "events")[-1]["reason"]
    with agent:
        x = inputs(1)[0]
        np.testing.assert_array_equal(agent.infer({"x": x})["y"], x + SERVING)


json_value = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                       st.text(max_size=10), st.sampled_from(MODES))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=json_value, share=json_value)
def test_offer_mode_and_share_are_checked(mode, share):
    doc = json.loads(make_offer("a" * 32, "b" * 64, 5000, 4096, b"x" * 64).to_bytes())
    doc.update(mode=mode, shadow_share=share)
    try:
        offer = parse_offer(json.dumps(doc).encode())
    except BadMessage as exc:
        assert exc.fields in (["mode"], ["shadow_share"], ["payload"])     # payload: NaN/Infinity is not JSON
        return
    assert offer.mode in MODES and (mode is None or offer.mode == mode)
    assert offer.shadow_share is None or 0.0 <= offer.shadow_share <= 1.0


def test_judge_and_shadow_block():
    block = {"samples": 3, "total": {"samples": 500, "dropped": 2, "errors": 0, "nonfinite": 0,
                                     "agreement": {"top1": 0.97, "cosine_mean": 0.9995, "cosine_min": 0.99,
                                                   "max_abs": 0.4},
                                     "latency_ms": {"shadow": {"p50": 1.0, "p95": 3.0},
                                                    "serving": {"p50": 1.0, "p95": 2.0}}}}
    assert shadow_block({"telemetry": {"shadow": block}}) is block and shadow_block({"telemetry": {}}) is None
    ok = judge(block, min_samples=100, min_top1=0.95, min_cosine=0.999)
    assert ok["passed"] and ok["figures"]["p95_ratio"] == 1.5
    bad = judge(block, min_top1=0.99, max_abs=0.1, max_p95_ratio=1.2)
    assert not bad["passed"] and len(bad["reasons"]) == 3
    assert "top-1 agreement 0.97 is below 0.99" in bad["reasons"][0]
    assert judge(None)["reasons"] == ["no shadow runs on the device (no shadow block)"]


def test_flash_shadow_argument_errors(bundles):
    run = CliRunner().invoke
    r = run(app, ["flash", str(bundles["v2"]), "--broker", "mqtt://127.0.0.1:1", "--device", "x",
                  "--shadow-share", "0.2"])
    assert r.exit_code == 11 and "--shadow-share goes with --shadow" in r.stderr
    r = run(app, ["flash", str(bundles["v2"]), "--via", "dir:/nonexistent", "--shadow"])
    assert r.exit_code == 11 and "MQTT only" in r.stderr
    r = run(app, ["flash", str(bundles["v2"]), "--broker", "mqtt://127.0.0.1:1", "--device", "x", "--shadow",
                  "--shadow-share", "1.5"])
    assert r.exit_code == 2


json_doc = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
                        lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.sampled_from(["total", "agreement", "latency_ms", "shadow", "serving",
                                                           "p95", "samples", "errors", "nonfinite", "top1",
                                                           "cosine_mean", "max_abs", "last_error", "type",
                                                           "request_id", "stopped", "state"]), inner, max_size=6),
                        max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_doc)
def test_device_figures_of_any_shape_give_a_verdict_never_an_exception(doc):
    verdict = judge(doc, min_samples=1, max_abs=0.5, max_p95_ratio=2.0)
    assert isinstance(verdict["passed"], bool) and all(isinstance(r, str) for r in verdict["reasons"])
    assert not verdict["passed"] or verdict["figures"]["samples"] >= 1
    json.dumps(verdict["figures"], allow_nan=False)
    assert shadow_block(doc) is None or isinstance(shadow_block(doc), dict)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=json_doc, raw=st.binary(max_size=60), verb=st.sampled_from(["shadow-status", "shadow-stop",
                                                                       "shadow-promote"]))
def test_host_reads_any_device_answer_without_failing(doc, raw, verb):
    from edgepack.fleet.shadow import _Ask
    ask = _Ask(verb, "lab")
    ask.message("edgepack/v1/lab/cam/state", b'{"state": "online", "shadow": 1}')
    ask.ask("cam")
    for payload in (raw, json.dumps(doc).encode(), json.dumps({"type": "shadow_status", "shadow": doc}).encode()):
        ask.message("edgepack/v1/lab/cam/events", payload)
    [row] = ask.results(0.0)
    assert row["device"] == "cam" and isinstance(row["ok"], bool) and isinstance(row["state"], str)
    assert row["reason"] is None or isinstance(row["reason"], str)
    assert row["shadow"] is None or isinstance(row["shadow"], dict)
