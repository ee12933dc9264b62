"""Shadow testing end to end on a real mosquitto with a real agent (state folder, MQTT link, local HTTP API):
``flash --shadow`` a candidate that differs slightly -> the answers stay the serving model's, telemetry's
``shadow`` block matches the figures computed offline for the same inputs; an identical candidate agrees fully;
``shadow-stop`` removes the block; a restart never serves the shadow; ``shadow-promote`` goes through the Updater."""
from __future__ import annotations

import json
import uuid

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from edgepack.fleet.flash import FlashSettings, flash
from edgepack.fleet.shadow import judge, promote_shadow, shadow_status, start_shadow, stop_shadow
from tests.flash.devices import Device, wait

from .shadow_kit import CANDIDATE, SERVING, infer, inputs, make_bundle, offline


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("shadow")
    return {"v1": make_bundle(d / "v1.edgepack", "1", SERVING),
            "v2": make_bundle(d / "v2.edgepack", "2", CANDIDATE),
            "twin": make_bundle(d / "twin.edgepack", "1.0.1", SERVING)}           # same model, another bundle


@pytest.fixture
def device(broker, tmp_path):
    made = []

    def make(bundle, **conf) -> Device:
        conf.setdefault("shadow_queue", 1000)          # a niced shadow on a busy test machine: no drops
        made.append(Device(tmp_path, broker.port, "cam-1", f"f{uuid.uuid4().hex[:8]}", bundle, **conf).start())
        return made[-1]
    yield make
    for d in made:
        d.stop()


def _shadow_flash(broker, dev, bundle, share=1.0):
    return flash(bundle, broker=f"mqtt://127.0.0.1:{broker.port}", devices=[dev.device_id], fleet=dev.fleet,
                 settings=FlashSettings(chunk_size=4096, timeout=60, discovery=1.0, mode="shadow",
                                        shadow_share=share))


def _command(broker, dev, verb: str, body: dict | None = None) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"host-{uuid.uuid4().hex[:8]}")
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    c.publish(f"edgepack/v1/{dev.fleet}/{dev.device_id}/cmd/{verb}", json.dumps(body or {}), qos=1).wait_for_publish(5)
    c.disconnect()
    c.loop_stop()


def _telemetry(broker, dev, sub) -> dict:
    """Close a telemetry period now (cmd/telemetry) and return it."""
    topic = f"{dev.device_id}/telemetry"                           # not .../cmd/telemetry
    before = len(sub.on(topic))
    _command(broker, dev, "telemetry")
    assert sub.wait_for(lambda: len(sub.on(topic)) > before, 10)
    return sub.on(topic)[-1]["telemetry"]


def _event(sub, kind: str, timeout: float = 30.0, **match) -> dict:
    """The last event of type ``kind`` whose fields have the values in ``match`` (waits for it)."""
    def found():
        return [e for e in sub.on("/events") if e.get("type") == kind and all(e.get(k) == v for k, v in match.items())]
    assert sub.wait_for(lambda: bool(found()), timeout), sub.on("/events")
    return found()[-1]


def _serve(dev, xs) -> list[np.ndarray]:
    out = [infer(dev.server.port, x) for x in xs]
    assert wait(lambda: dev.agent.shadow.queue.qsize() == 0 and
                dev.agent.shadow.block(reset=False)["total"]["samples"] + dev.agent.shadow.block(
                    reset=False)["total"]["errors"] >= len(xs), 20)
    return out


def test_a_shadow_never_changes_answers_and_reports_agreement_as_computed_offline(broker, device, bundles, subscribe):
    dev = device(bundles["v1"])
    sub = subscribe(f"edgepack/v1/{dev.fleet}/#")
    [result] = _shadow_flash(broker, dev, bundles["v2"])
    assert result["ok"] and result["state"] == "shadowing", result
    assert _event(sub, "shadow_started")["version"] == "2"
    assert dev.agent.updater.status()["slots"][dev.agent.updater.status()["active_slot"]]["model"]["version"] == "1"
    _telemetry(broker, dev, sub)                                   # a fresh period
    xs = inputs(60)
    answers = _serve(dev, xs)
    for x, y in zip(xs, answers):                                  # the serving model's answers, unchanged
        np.testing.assert_array_equal(y, x + SERVING)
    block = _telemetry(broker, dev, sub)["shadow"]
    want = offline(xs, SERVING, CANDIDATE)
    assert block["version"] == "2" and block["model"] == "adder" and block["share"] == 1.0
    assert block["samples"] == 60 and block["dropped"] == 0 and block["errors"] == 0
    got = block["agreement"]
    assert got["top1"] == pytest.approx(want["top1"]) and got["top1"] < 1.0
    for key in ("cosine_mean", "cosine_min", "max_abs"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key
    assert got["cosine_min"] < 1.0
    lat = block["latency_ms"]
    assert lat["shadow"]["p50"] > 0 and lat["serving"]["p50"] > 0 and lat["shadow"]["p95"] >= lat["shadow"]["p50"]
    assert block["total"]["samples"] == 60

    [again] = _shadow_flash(broker, dev, bundles["twin"])          # replaces the first shadow
    assert again["state"] == "shadowing", again
    _telemetry(broker, dev, sub)
    _serve(dev, inputs(20, seed=5))
    block = _telemetry(broker, dev, sub)["shadow"]
    assert block["version"] == "1.0.1" and block["samples"] == 20
    got = block["agreement"]
    assert got["top1"] == 1.0 and got["max_abs"] == 0.0                  # bit-identical answers
    assert got["cosine_mean"] == pytest.approx(1.0, abs=1e-12) and got["cosine_min"] == pytest.approx(1.0, abs=1e-12)

    _command(broker, dev, "shadow-stop", {"request_id": "r1"})
    replaced = _event(sub, "shadow_stopped", update_id=result["update_id"])       # the first one, when replaced
    assert replaced["reason"] == f"replaced by shadow {again['update_id']}" and replaced["total"]["samples"] == 60
    stopped = _event(sub, "shadow_stopped", request_id="r1")
    assert stopped["stopped"] is True and stopped["total"]["samples"] == 20
    assert "shadow" not in _telemetry(broker, dev, sub)
    assert not (dev.root / "state" / "shadow").exists()
    np.testing.assert_array_equal(infer(dev.server.port, xs[0]), xs[0] + SERVING)


def test_a_restart_never_serves_the_shadow_and_promote_goes_through_the_updater(broker, device, bundles, subscribe):
    dev = device(bundles["v1"])
    sub = subscribe(f"edgepack/v1/{dev.fleet}/#")
    [started] = start_shadow(bundles["v2"], broker=f"mqtt://127.0.0.1:{broker.port}", devices=[dev.device_id],
                             fleet=dev.fleet, share=0.5, settings=FlashSettings(timeout=60, discovery=1.0))
    assert started["ok"] and started["state"] == "shadowing", started
    slot = dev.agent.updater.status()["active_slot"]
    dev.stop()
    dev.start()                                                    # the same state folder
    xs = inputs(10, seed=9)
    for x in xs:
        np.testing.assert_array_equal(infer(dev.server.port, x), x + SERVING)
    st = dev.agent.updater.status()
    assert st["active_slot"] == slot and st["slots"][slot]["model"]["version"] == "1"
    assert dev.agent.shadow is not None and dev.agent.shadow.info["version"] == "2"   # still a shadow, resumed
    assert dev.agent.shadow.share == 0.5
    assert wait(lambda: dev.agent.shadow.block(reset=False)["total"]["samples"] == 5, 10)

    url = f"mqtt://127.0.0.1:{broker.port}"
    [status] = shadow_status(broker=url, devices=[dev.device_id], fleet=dev.fleet)        # what a rollout reads
    assert status["ok"] and status["state"] == "shadowing" and status["shadow"]["total"]["samples"] == 5
    verdict = judge(status["shadow"], min_samples=5, min_top1=0.0, min_cosine=0.9)
    assert verdict["passed"], verdict
    strict = judge(status["shadow"], min_samples=6, min_top1=1.0, min_cosine=0.9)
    assert not strict["passed"] and "only 5 samples" in strict["reasons"][0]
    [done] = promote_shadow(broker=url, devices=[dev.device_id], fleet=dev.fleet, timeout=60)
    assert done["ok"] and done["state"] == "committed", done
    assert _event(sub, "shadow_promoted", request_id=done["request_id"])["state"] == "committed"
    st = dev.agent.updater.status()
    assert st["state"] == "committed" and st["active_slot"] != slot and st["previous_slot"] == slot
    assert st["slots"][st["active_slot"]]["model"]["version"] == "2"
    np.testing.assert_array_equal(infer(dev.server.port, xs[0]), xs[0] + CANDIDATE)
    assert dev.agent.shadow is None and not (dev.root / "state" / "shadow").exists()
    assert "shadow" not in _telemetry(broker, dev, sub)
    assert _event(sub, "shadow_stopped")["promoted"] is True
    [none] = stop_shadow(broker=url, devices=[dev.device_id], fleet=dev.fleet)
    assert none["ok"] and none["state"] == "none"


def test_flash_shadow_cli_and_an_older_agent_is_refused_before_anything_is_sent(broker, device, bundles, subscribe):
    from typer.testing import CliRunner

    from edgepack.cli.main import app
    dev = device(bundles["v1"])
    offers = subscribe(f"edgepack/v1/{dev.fleet}/+/ota/offer")      # before the run: every offer it makes
    old = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"old-{uuid.uuid4().hex[:8]}")
    old.connect("127.0.0.1", broker.port)                   # an agent from before shadows: ota, no shadow
    old.loop_start()
    old.publish(f"edgepack/v1/{dev.fleet}/cam-old/state", json.dumps({"state": "online", "ota": 1}), qos=1,
                retain=True).wait_for_publish(5)
    try:
        r = CliRunner().invoke(app, ["flash", str(bundles["v2"]), "--broker", f"mqtt://127.0.0.1:{broker.port}",
                                     "--fleet", dev.fleet, "--device", dev.device_id, "--device", "cam-old",
                                     "--shadow", "--shadow-share", "0.25", "--json", "--discovery", "1",
                                     "--timeout", "60"])
        rows = {row["device"]: row for row in json.loads(r.stdout)}
        assert r.exit_code == 11, r.stderr                     # not every device is shadowing
        assert rows["cam-1"]["ok"] and rows["cam-1"]["state"] == "shadowing"
        assert rows["cam-old"]["state"] == "refused" and "does not announce shadow" in rows["cam-old"]["reason"]
        assert dev.agent.shadow.share == 0.25
        assert offers.on("cam-1/ota/offer") and not offers.on("cam-old/ota/offer")      # nothing offered to it
        assert dev.agent.updater.status()["active_slot"] and dev.agent.rt.bundle.manifest["model"]["version"] == "1"
    finally:
        old.publish(f"edgepack/v1/{dev.fleet}/cam-old/state", b"", qos=1, retain=True).wait_for_publish(5)
        old.disconnect()
        old.loop_stop()


def test_a_normal_flash_of_the_shadow_bundle_promotes_it(broker, device, bundles, subscribe):
    dev = device(bundles["v1"])
    sub = subscribe(f"edgepack/v1/{dev.fleet}/#")
    [shadowing] = _shadow_flash(broker, dev, bundles["v2"])
    assert shadowing["state"] == "shadowing"
    [done] = flash(bundles["v2"], broker=f"mqtt://127.0.0.1:{broker.port}", devices=[dev.device_id],
                   fleet=dev.fleet, settings=FlashSettings(chunk_size=4096, timeout=60, discovery=1.0))
    assert done["ok"] and done["state"] == "committed", done
    ended = _event(sub, "shadow_stopped", update_id=shadowing["update_id"])
    assert ended["promoted"] is True and "serves now" in ended["reason"]
    assert dev.agent.shadow is None and not (dev.root / "state" / "shadow").exists()
    x = inputs(1)[0]
    np.testing.assert_array_equal(infer(dev.server.port, x), x + CANDIDATE)
    assert sub.wait_for(lambda: sub.on("cam-1/ota/status")[-1].get("state") == "committed", 5)   # not "shadowing"
