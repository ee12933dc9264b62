"""The Updater in one process: install, health check, automatic rollback, refusals, operator rollback, bad state."""
from __future__ import annotations

import json
import shutil

import pytest

from edgepack_runtime.ota import OtaError, Updater
from edgepack_runtime.ota.actions import ACTIONS
from edgepack_runtime.ota.table import STATES, TABLE, BadTransition
from ota_helpers import served_bias


def test_table_is_complete_and_refuses_unknown_pairs():
    assert {r.action for r in TABLE.rows.values()} <= set(ACTIONS)
    assert TABLE.states() == list(STATES)
    with pytest.raises(BadTransition, match="not accepted in state 'installing'"):
        TABLE.step("installing", "rollback")
    md = TABLE.render()
    assert md.startswith("| state | event | next state | action | when |")
    assert md.count("\n") == len(TABLE.rows) + 2


def test_install_switches_and_the_served_model_changes(state, bundles):
    seen = []
    up = Updater(state, on_status=seen.append)
    first = up.install(bundles["v1"], update_id="u1")
    assert first["state"] == "committed" and first["active_slot"] == "a"
    assert served_bias(up.active()) == 1.0
    second = up.install(bundles["v2"], update_id="u2")
    assert second["state"] == "committed" and second["active_slot"] == "b" and second["previous_slot"] == "a"
    assert second["model"] == {"name": "adder", "version": "2"}
    assert served_bias(up.active()) == 2.0
    assert second["health"]["passed"] and second["health"]["samples"] == 2
    assert second["health"]["latency_ms"]["median"] > 0
    states = [s["state"] for s in seen if s["update_id"] == "u2"]
    assert states == ["verifying", "installing", "health_check", "switching", "committed"]
    doc = json.loads((state / "ota.json").read_text())
    assert doc["format"] == 1 and doc["state"] == "committed"
    assert (state / "slots" / "active").is_symlink()


def test_wrong_reference_outputs_roll_back_and_keep_the_old_model(state, bundles):
    up = Updater(state)
    up.install(bundles["v1"], update_id="u1")
    st = up.install(bundles["bad"], update_id="u2")
    assert st["state"] == "rolled_back" and st["active_slot"] == "a"
    assert "health check failed: self-check failed" in st["reason"]
    assert served_bias(up.active()) == 1.0
    assert up.slots.bundle("b") is None          # the failed bundle is gone, it is nobody's rollback target


def test_latency_budget_of_zero_rolls_back(state, bundles):
    up = Updater(state, health_budget_ms=50.0)
    up.install(bundles["v1"], update_id="u1")
    st = up.install(bundles["v2"], update_id="u2", budget_ms=0.0)
    assert st["state"] == "rolled_back" and "over the 0 ms budget" in st["reason"]
    assert st["health"]["latency_ms"]["median"] > 0
    assert served_bias(up.active()) == 1.0


def test_bundle_without_samples_is_not_trusted(state, bundles):
    up = Updater(state)
    up.install(bundles["v1"], update_id="u1")
    st = up.install(bundles["nosamples"], update_id="u2")
    assert st["state"] == "rolled_back" and "no samples" in st["reason"]
    assert served_bias(up.active()) == 1.0


def test_tampered_and_truncated_bundles_are_refused_and_nothing_is_installed(state, bundles, tmp_path):
    up = Updater(state)
    up.install(bundles["v1"], update_id="u1")
    tampered = tmp_path / "tampered.edgepack"
    data = bytearray(bundles["v2"].read_bytes())
    at = data.find(b"bias")                       # a byte inside the ONNX model member
    data[at + 40] ^= 0xFF
    tampered.write_bytes(bytes(data))
    truncated = tmp_path / "cut.edgepack"
    truncated.write_bytes(bundles["v2"].read_bytes()[:3000])
    for bad, why in ((tampered, "corrupt"), (truncated, "truncated"), (tmp_path / "missing.edgepack", "gone")):
        st = up.install(bad, update_id="bad")
        assert st["state"] == "failed" and why in st["reason"], st["reason"]
        assert st["active_slot"] == "a" and up.slots.bundle("b") is None
        assert served_bias(up.active()) == 1.0


def test_device_profile(state, bundles):
    up = Updater(state, profile="raspberry-pi-5")
    st = up.install(bundles["other"], update_id="u1")
    assert st["state"] == "failed" and "not built for device profile 'raspberry-pi-5'" in st["reason"]
    assert "apple-a17-m3" in st["reason"] and up.active() is None
    assert up.install(bundles["mine"], update_id="u2")["state"] == "committed"
    assert up.install(bundles["v1"], update_id="u3")["state"] == "committed"   # no devices list: no claim


def test_operator_rollback_goes_to_the_previous_slot_and_back(state, bundles):
    up = Updater(state)
    with pytest.raises(OtaError, match="nothing installed yet"):
        up.rollback()
    up.install(bundles["v1"], update_id="u1")
    with pytest.raises(OtaError, match="no previous slot"):
        up.rollback()
    up.install(bundles["v2"], update_id="u2")
    st = up.rollback()
    assert st["state"] == "rolled_back" and st["active_slot"] == "a" and served_bias(up.active()) == 1.0
    st = up.rollback()                            # and forward again: the other slot is still there
    assert st["active_slot"] == "b" and served_bias(up.active()) == 2.0


def test_switch_callback_failure_restores_the_previous_slot(state, bundles):
    swaps = []

    def on_switch(path):
        swaps.append(path)
        if len(swaps) == 2:
            raise RuntimeError("agent could not load it")
    up = Updater(state, on_switch=on_switch)
    up.install(bundles["v1"], update_id="u1")
    st = up.install(bundles["v2"], update_id="u2")
    assert st["state"] == "rolled_back" and "agent could not load it" in st["reason"]
    assert st["active_slot"] == "a" and served_bias(up.active()) == 1.0
    assert [p.parent.name for p in swaps] == ["a", "b", "a"]


@pytest.mark.parametrize("content", [b"{not json", b"", b"[]", b'{"format": 1, "state": "flying"}',
                                     b'{"format": 1, "state": "committed", "target_slot": "../../etc"}'])
def test_corrupt_state_keeps_serving_and_is_set_aside_by_the_next_install(state, bundles, content):
    up = Updater(state)
    up.install(bundles["v1"], update_id="u1")
    (state / "ota.json").write_bytes(content)
    fresh = Updater(state)
    st = fresh.recover()
    assert st["state"] == "unknown" and "ota.json" in st["reason"] and st["active_slot"] == "a"
    assert served_bias(fresh.active()) == 1.0
    assert fresh.slots.bundle("a") is not None
    st = fresh.install(bundles["v2"], update_id="u2")
    assert st["state"] == "committed" and served_bias(fresh.active()) == 2.0
    kept = list(state.glob("ota.json.corrupt-*"))
    assert [p.read_bytes() for p in kept] == [content]
    history = json.loads((state / "ota.json").read_text())["history"]
    assert f"kept as {kept[0].name}" in history[0]["reason"] and history[-1]["state"] == "committed"
    assert fresh.status()["slots"]["a"]["model"] == {"name": "adder", "version": "1"}


def test_state_from_a_newer_runtime_is_never_overwritten(state, bundles):
    up = Updater(state)
    up.install(bundles["v1"], update_id="u1")
    newer = json.dumps({"format": 2, "whatever": True}).encode()
    (state / "ota.json").write_bytes(newer)
    fresh = Updater(state)
    assert "format 2 is not supported" in fresh.recover()["reason"]
    with pytest.raises(OtaError, match="upgrade edgepack-runtime"):
        fresh.install(bundles["v2"], update_id="u2")
    assert (state / "ota.json").read_bytes() == newer and served_bias(fresh.active()) == 1.0


def test_disk_space_is_checked_before_the_slot_is_written(state, bundles, monkeypatch):
    up = Updater(state)
    up.install(bundles["v1"], update_id="u1")
    monkeypatch.setattr(up, "free_bytes", lambda: 1000)   # the real figure is checked by the next assert
    st = up.install(bundles["v2"], update_id="u2")
    assert st["state"] == "failed" and "not enough disk space" in st["reason"]
    assert up.slots.bundle("b") is None and served_bias(up.active()) == 1.0
    assert Updater(state).free_bytes() == shutil.disk_usage(state).free


def test_inbox_is_installed_by_recover_and_rejects_are_kept(state, bundles):
    inbox = state / "inbox"
    inbox.mkdir(parents=True)
    shutil.copy(bundles["v1"], inbox / "v1.edgepack")
    up = Updater(state)
    st = up.recover()
    assert st["state"] == "committed" and st["update_id"] == "inbox-v1" and served_bias(up.active()) == 1.0
    assert not list(inbox.iterdir())
    shutil.copy(bundles["bad"], inbox / "bad.edgepack")
    st = up.recover()
    assert st["state"] == "rolled_back" and [p.name for p in inbox.iterdir()] == ["bad.edgepack.rejected"]
    assert up.recover()["state"] == "rolled_back"            # not retried at every start


def test_update_ids_are_checked(state):
    up = Updater(state)
    for bad in ("", "../x", "a/b", ".hidden", "x" * 65):
        with pytest.raises(OtaError, match="update id"):
            up.staging_path(bad)
    assert up.staging_path("u-1.2_3") == state / "staging" / "u-1.2_3.edgepack"


def test_the_readme_shows_the_table():
    from pathlib import Path

    import edgepack_runtime
    readme = (Path(edgepack_runtime.__file__).parents[1] / "README.md").read_text()
    begin, end = "<!-- ota table: begin -->\n", "<!-- ota table: end -->"
    assert readme[readme.index(begin) + len(begin):readme.index(end)] == TABLE.render(), \
        "runtime/README.md: paste `edgepack-device ota-status --state-dir . --table` between the ota table markers"


def test_meta_and_budget_are_checked_before_anything_is_persisted(state, bundles):
    up = Updater(state)
    for kwargs, match in (({"meta": {"x": float("inf")}}, "meta must be"), ({"meta": {"x": object()}}, "meta must be"),
                          ({"budget_ms": -1.0}, "budget_ms"), ({"budget_ms": float("nan")}, "budget_ms"),
                          ({"budget_ms": True}, "budget_ms")):
        with pytest.raises(OtaError, match=match):
            up.install(bundles["v1"], update_id="u1", **kwargs)
    assert not (state / "ota.json").exists()
    st = up.install(bundles["v1"], update_id="u1", meta={"flash": {"chunks": 3}}, budget_ms=1e4)
    assert st["state"] == "committed" and st["health"]["budget_ms"] == 1e4


def test_download_hooks(state, bundles):
    up = Updater(state)
    up.install(bundles["v1"], update_id="u1")
    assert up.begin_download("d1", meta={"size": 3})["state"] == "downloading"
    staged = up.staging_path("d1")
    staged.write_bytes(b"half")
    (staged.parent / (staged.name + ".part")).write_bytes(b"map")
    with pytest.raises(OtaError, match="not the one in progress"):
        up.downloaded("other")
    with pytest.raises(BadTransition, match="not accepted in state 'downloading'"):
        up._event_for("d1", "switched")
    st = up.abort("d1", "sender gave up")
    assert st["state"] == "failed" and st["reason"] == "sender gave up" and not list(staged.parent.iterdir())
    assert served_bias(up.active()) == 1.0
    up.begin_download("d2")
    shutil.copy(bundles["v2"], up.staging_path("d2"))
    assert up.downloaded("d2")["state"] == "downloaded"
    assert up.install(up.staging_path("d2"), update_id="d2")["state"] == "committed"
    assert not up.staging_path("d2").exists() and served_bias(up.active()) == 2.0


def test_recover_repairs_a_lost_pointer_and_power_cut_leftovers(state, bundles):
    import os
    up = Updater(state)
    up.install(bundles["v1"], update_id="u1")
    (state / ".ota.json.x1.tmp").write_text("{half")
    os.symlink("b", state / "slots" / ".active.999.tmp")
    (state / "slots" / "active").unlink()
    assert Updater(state).recover()["active_slot"] == "a"
    assert not list(state.glob(".ota.json.*")) and not list((state / "slots").glob(".active.*"))
    up.slots.point("b")                                     # pointing at an empty slot
    assert Updater(state).recover()["active_slot"] == "a" and served_bias(up.active()) == 1.0


def test_callbacks_may_call_back_and_slot_files_are_not_sources(state, bundles):
    seen = []
    up = Updater(state, on_switch=lambda path: seen.append(up.status()["state"]))
    up.on_status = lambda st: seen.append(up.free_bytes() > 0 and st["state"])
    assert up.install(bundles["v1"], update_id="u1")["state"] == "committed" and "switching" in seen
    st = up.install(up.active(), update_id="again")
    assert st["state"] == "failed" and "inside the slots folder" in st["reason"] and served_bias(up.active()) == 1.0
