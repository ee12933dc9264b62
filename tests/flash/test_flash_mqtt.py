"""``flash`` end to end on a real mosquitto with real agents: five devices at once, each switching to the new
model and answering from it on its local HTTP API; a broker restart in mid-transfer that resumes without
resending what arrived; unknown devices, other profiles and offline devices; rollback over MQTT."""
from __future__ import annotations

import json
import shutil
import threading
import uuid

import pytest

from edgepack.fleet.flash import FlashSettings, flash
from edgepack.fleet.rollback import rollback
from edgepack_runtime.signing import sign_bundle, write_keypair

from .bundles import built_bundle, make_bundle
from .devices import Device, wait


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("flash")
    return {"v1": make_bundle(d / "v1.edgepack", "1", 1.0),
            "v2": make_bundle(d / "v2.edgepack", "2", 2.0, pad=200_000),
            "big": make_bundle(d / "big.edgepack", "3", 3.0, pad=3_000_000),
            "pi": make_bundle(d / "pi.edgepack", "pi", 4.0, devices=["raspberry-pi-5"])}


@pytest.fixture
def fleet():
    return f"f{uuid.uuid4().hex[:8]}"                 # one fleet per test: the session broker is shared


@pytest.fixture
def devices(tmp_path):
    made: list[Device] = []

    def make(port, device_id, fleet, bundle, **conf) -> Device:
        made.append(Device(tmp_path, port, device_id, fleet, bundle, **conf))
        return made[-1]
    yield make
    for d in made:
        d.stop()


def _url(broker) -> str:
    return f"mqtt://127.0.0.1:{broker.port}"


def test_flash_five_agents_at_once_each_answers_from_the_new_model(broker, devices, fleet, bundles, tmp_path):
    keys, strangers = write_keypair(tmp_path / "keys"), write_keypair(tmp_path / "strangers")
    seed = shutil.copy(bundles["v1"], tmp_path / "seed.edgepack")
    sign_bundle(seed, keys["private"])
    v2 = built_bundle(tmp_path / "build", "2", 2.0, sign_key=keys["private"])     # edgepack build --sign-key
    fleet_devices = [devices(broker.port, f"cam-{i}", fleet, seed, trust_keys=[str(keys["public"])]).start()
                     for i in range(5)]
    assert {d.bias() for d in fleet_devices} == {1.0}
    seen: list[list[dict]] = []
    results = flash(v2, broker=_url(broker), fleet=fleet,                          # --fleet: all that announced
                    settings=FlashSettings(chunk_size=4096, timeout=60, discovery=1.0), progress=seen.append)
    assert sorted(r["device"] for r in results) == [f"cam-{i}" for i in range(5)]
    assert all(r["ok"] and r["state"] == "committed" for r in results), results
    chunks = -(-v2.stat().st_size // 4096)
    for r in results:
        assert r["model"]["version"] == "2"
        assert r["host"]["sent"] == chunks and r["host"]["resent"] == 0, r["host"]
        assert r["device_transfer"]["received"] == chunks and r["device_transfer"]["duplicates"] == 0
    assert {d.bias() for d in fleet_devices} == {2.0}                              # served by the new model
    for d in fleet_devices:
        st = d.agent.updater.status()
        assert st["slots"][st["active_slot"]]["signature"]["verified"] is True
    states = {row["state"] for rows in seen for row in rows}
    assert "committed" in states and states <= {"pending", "downloading", "downloaded", "verifying", "installing",
                                                 "health_check", "switching", "committed"}, states
    foreign = shutil.copy(bundles["v2"], tmp_path / "foreign.edgepack")
    sign_bundle(foreign, strangers["private"])                                       # a key the devices do not trust
    refused = flash(foreign, broker=_url(broker), devices=["cam-0", "cam-1"], fleet=fleet,
                    settings=FlashSettings(timeout=60, discovery=1.0))
    assert [r["state"] for r in refused] == ["failed", "failed"], refused
    assert all("refused" in r["reason"] and "signed by key" in r["reason"] for r in refused), refused
    assert {d.bias() for d in fleet_devices} == {2.0}


def test_a_broker_restart_mid_transfer_resumes_without_resending_what_arrived(broker, devices, fleet, bundles):
    dev = devices(broker.port, "cam-r", fleet, bundles["v1"]).start()
    link, rx = dev.agent.sink, dev.agent.receiver
    handler, _ = link.routes["ota/data/+"]
    gate, held, release = threading.Event(), [], threading.Event()

    def gated(suffix, payload):                 # the device stops reading after 40 chunks while the broker restarts
        if rx.counters["received"] >= 40 and not release.is_set():
            held.append(sorted(i for i in range(rx.dl.offer.chunks) if rx.dl.has(i)))
            gate.set()
            release.wait(20)
        handler(suffix, payload)
    link.routes["ota/data/+"] = (gated, 1)
    results = []
    t = threading.Thread(target=lambda: results.extend(flash(
        bundles["big"], broker=_url(broker), devices=["cam-r"], fleet=fleet,
        settings=FlashSettings(chunk_size=32768, timeout=60, discovery=1.0))))
    t.start()
    assert gate.wait(30), "the transfer never reached 40 chunks"
    broker.stop()
    broker.start()
    release.set()
    t.join(60)
    (r,) = results
    assert r["state"] == "committed", r
    chunks = -(-bundles["big"].stat().st_size // 32768)
    had = set(held[0])
    assert len(had) == 40
    host, device = r["host"], r["device_transfer"]
    assert not had & set(host["resent_chunks"]), "a chunk the device held was sent again"
    assert host["sent"] == chunks + host["resent"] and host["resent"] <= rx.window, host   # only what was in flight
    assert host["resent"] <= device["rerequested"], (host, device)              # each resend was asked for again
    # the device asks again once per offer it sees after the outage: on its own reconnect (the retained offer,
    # whose epoch may be the old one: the host ignores that request) and on the host's new epoch
    assert device["offers"] <= 3 and device["rerequested"] <= 2 * rx.window, device
    assert device["received"] == chunks and device["duplicates"] == 0, device
    assert dev.bias() == 3.0


def test_unknown_devices_other_profiles_and_agents_without_flash_are_refused_up_front(
        broker, devices, fleet, bundles, subscribe):
    devices(broker.port, "cam-ok", fleet, bundles["v1"]).start()
    devices(broker.port, "cam-mac", fleet, bundles["v1"], profile="apple-a17-m3").start()
    results = {r["device"]: r for r in flash(
        bundles["pi"], broker=_url(broker), devices=["cam-ok", "ghost", "cam-mac"], fleet=fleet,
        settings=FlashSettings(timeout=30, discovery=1.0))}
    assert results["cam-ok"]["state"] == "committed"                     # announced no profile: the device decides
    assert results["ghost"]["state"] == "unknown" and "never announced" in results["ghost"]["reason"]
    assert results["cam-mac"]["state"] == "refused" and "apple-a17-m3" in results["cam-mac"]["reason"]
    assert not results["ghost"]["ok"] and results["ghost"]["update_id"] is None
    late = subscribe(f"edgepack/v1/{fleet}/+/ota/offer")                  # nothing left retained for them
    assert not late.wait_for(lambda: late.messages, timeout=1.0), late.messages


def test_an_offline_device_is_pending_and_gets_the_update_when_it_comes_back(broker, devices, fleet, bundles):
    dev = devices(broker.port, "cam-off", fleet, bundles["v1"]).start()
    dev.stop()                                                             # announced, now offline
    rows: list[list[dict]] = []
    short = flash(bundles["v2"], broker=_url(broker), devices=["cam-off"], fleet=fleet,
                  settings=FlashSettings(timeout=1.5, discovery=0.5), progress=rows.append)
    assert short[0]["state"] == "pending" and "offline" in short[0]["reason"] and not short[0]["ok"]
    assert rows[0][0]["online"] == "offline"
    results = []
    t = threading.Thread(target=lambda: results.extend(flash(
        bundles["v2"], broker=_url(broker), devices=["cam-off"], fleet=fleet,
        settings=FlashSettings(timeout=60, discovery=0.5))))
    t.start()
    assert wait(lambda: False, timeout=1.0) is False                      # the operator sees pending meanwhile
    dev.start()
    t.join(60)
    assert results[0]["state"] == "committed", results
    assert dev.bias() == 2.0


def test_rollback_over_mqtt_returns_to_the_previous_model(broker, devices, fleet, bundles):
    dev = devices(broker.port, "cam-b", fleet, bundles["v1"]).start()
    (first,) = rollback(broker=_url(broker), devices=["cam-b"], fleet=fleet, timeout=30, discovery=1.0)
    assert first["state"] == "failed" and "no previous slot" in first["reason"] and not first["ok"], first
    assert flash(bundles["v2"], broker=_url(broker), devices=["cam-b"], fleet=fleet,
                 settings=FlashSettings(timeout=30, discovery=1.0))[0]["ok"]
    assert dev.bias() == 2.0
    (r,) = rollback(broker=_url(broker), devices=["cam-b"], fleet=fleet, timeout=30, discovery=1.0)
    assert r["ok"] and r["state"] == "rolled_back", r
    assert dev.bias() == 1.0
    (again,) = rollback(broker=_url(broker), devices=["cam-b"], fleet=fleet, timeout=30)
    assert again["state"] in ("rolled_back", "failed")                    # back to v2, or refused with a reason
    (ghost,) = rollback(broker=_url(broker), devices=["ghost"], fleet=fleet, timeout=1, discovery=0.3)
    assert ghost["state"] == "unknown" and not ghost["ok"]
    dev.stop()                                                             # offline: commands are not queued
    (gone,) = rollback(broker=_url(broker), devices=["cam-b"], fleet=fleet, timeout=1, discovery=0.5)
    assert gone["state"] == "no_answer" and "offline" in gone["reason"], gone


def test_a_bundle_file_changed_during_the_flash_stops_it_and_withdraws_the_offer(
        broker, devices, fleet, bundles, tmp_path, subscribe):
    dev = devices(broker.port, "cam-w", fleet, bundles["v1"]).start()
    link, rx = dev.agent.sink, dev.agent.receiver
    handler, _ = link.routes["ota/data/+"]
    gate, release = threading.Event(), threading.Event()

    def gated(suffix, payload):
        if rx.counters["received"] >= 10 and not release.is_set():
            gate.set()
            release.wait(20)
        handler(suffix, payload)
    link.routes["ota/data/+"] = (gated, 1)
    moving = shutil.copy(bundles["big"], tmp_path / "moving.edgepack")
    errors = []

    def run():
        try:
            flash(moving, broker=_url(broker), devices=["cam-w"], fleet=fleet,
                  settings=FlashSettings(chunk_size=32768, timeout=60, discovery=1.0))
        except Exception as exc:  # noqa: BLE001 - the expected error, checked below
            errors.append(exc)
    t = threading.Thread(target=run)
    t.start()
    assert gate.wait(30)
    with open(moving, "r+b") as fh:                                     # someone rewrites the file meanwhile
        fh.seek(2_000_000)
        fh.write(b"changed")
    release.set()
    t.join(60)
    assert errors and "changed while it was being flashed" in str(errors[0]), errors
    late = subscribe(f"edgepack/v1/{fleet}/cam-w/ota/offer")
    assert not late.wait_for(lambda: late.messages, timeout=1.0), "the offer was left on the broker"
    assert dev.bias() == 1.0


def test_junk_on_the_flash_topics_is_counted_and_refused_then_a_flash_still_works(
        broker, devices, fleet, bundles, subscribe):
    import paho.mqtt.publish as publish
    dev = devices(broker.port, "cam-j", fleet, bundles["v1"]).start()
    base = f"edgepack/v1/{fleet}/cam-j"
    status = subscribe(f"{base}/ota/status")
    oversized = json.dumps({"v": 1, "update_id": "c" * 32, "sha256": "d" * 64, "size": 3 * 2 ** 30,
                            "chunk_size": 2 ** 20, "chunks": 3072, "hashes": ""}).encode()
    msgs = [(f"{base}/ota/offer", b"{not json"), (f"{base}/ota/offer", oversized),
            (f"{base}/ota/data/{'c' * 32}", b"\x00" * 100), (f"{base}/ota/data/x", b"")]
    publish.multiple([{"topic": t, "payload": p, "qos": 1} for t, p in msgs], hostname="127.0.0.1", port=broker.port)
    rx = dev.agent.receiver
    assert wait(lambda: rx.counters["bad_offers"] == 2 and rx.counters["malformed"] == 2), rx.counters
    assert status.wait_for(lambda: any("over this device's limit" in (m.get("reason") or "")
                                       and m.get("update_id") == "c" * 32 for m in status.on("ota/status")))
    assert dev.agent.health()["status"] == "ok" and not list((dev.root / "state" / "staging").glob("*"))
    (r,) = flash(bundles["v2"], broker=_url(broker), devices=["cam-j"], fleet=fleet,
                 settings=FlashSettings(timeout=30, discovery=1.0))
    assert r["state"] == "committed" and dev.bias() == 2.0


def test_allow_unknown_leaves_the_offer_pending_until_the_device_first_appears(broker, devices, fleet, bundles):
    results = []
    t = threading.Thread(target=lambda: results.extend(flash(
        bundles["v2"], broker=_url(broker), devices=["cam-new"], fleet=fleet,
        settings=FlashSettings(timeout=60, discovery=0.3, allow_unknown=True))))
    t.start()
    assert not wait(lambda: results, timeout=1.0)                       # pending: offered, nobody there yet
    dev = devices(broker.port, "cam-new", fleet, bundles["v1"]).start()   # a brand-new device joins the fleet
    t.join(60)
    assert results[0]["state"] == "committed", results
    assert dev.bias() == 2.0
