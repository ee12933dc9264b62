"""Updates on a device with trust keys: signed bundles install, unsigned and wrongly signed ones are refused
before any slot is written (real Ed25519 keys and signatures from edgepack_runtime.signing)."""
from __future__ import annotations

import shutil

from edgepack_runtime.ota import Updater
from edgepack_runtime.signing import sign_bundle, write_keypair
from ota_helpers import served_bias


def test_trust_keys_gate_updates(tmp_path, bundles):
    ours = write_keypair(tmp_path / "ours")
    theirs = write_keypair(tmp_path / "theirs")
    signed = {}
    for name, key in (("v1", ours), ("v2", ours), ("v3", theirs)):
        signed[name] = shutil.copy(bundles[name], tmp_path / f"{name}-signed.edgepack")
        sign_bundle(signed[name], key["private"], signer="ci")
    up = Updater(tmp_path / "state", trust_keys=[ours["public"]])
    st = up.install(signed["v1"], update_id="u1")
    assert st["state"] == "committed" and st["slots"]["a"]["signature"]["verified"] is True
    st = up.install(bundles["v2"], update_id="u2")                       # unsigned
    assert st["state"] == "failed" and "not signed" in st["reason"] and up.slots.bundle("b") is None
    st = up.install(signed["v3"], update_id="u3")                        # signed by a key we do not trust
    assert st["state"] == "failed" and "refused" in st["reason"] and up.slots.bundle("b") is None
    assert served_bias(up.active()) == 1.0
    st = up.install(signed["v2"], update_id="u4")
    assert st["state"] == "committed" and served_bias(up.active()) == 2.0
    open_device = Updater(tmp_path / "state2")                            # no trust key: runs, says so
    st = open_device.install(bundles["v1"], update_id="u1")
    assert st["state"] == "committed" and "not checked" in st["slots"]["a"]["signature"]["note"]
