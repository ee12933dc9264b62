"""``--via ssh://`` with install: ``edgepack-device install`` run over ssh on the device (this machine's runtime)."""
from __future__ import annotations

import shutil

import pytest

from edgepack.errors import DeliveryError
from edgepack.fleet.via import deliver
from edgepack_runtime.archive import open_source

from .bundles import DEVICE, active_bias, add_bundle


def test_install_over_ssh_switches_the_device_to_the_new_model(sshd, device, tmp_path):
    v2 = add_bundle(tmp_path / "v2.edgepack", (1.0, 2.0), version="2")
    result = deliver(sshd.url(device), v2, device_cmd=DEVICE)
    assert result["installed"] is True and result["via"] == "ssh"
    status = result["status"]
    assert status["state"] == "committed" and status["model"]["version"] == "2"
    assert active_bias(device) == [1.0, 2.0]
    assert list((device / "inbox").iterdir()) == []


def tampered(src, dst):
    """``src`` with one byte of its ONNX model flipped: the manifest's sha256 no longer matches."""
    shutil.copyfile(src, dst)
    offset, size = open_source(dst).members["models/ref/model.onnx"]
    with open(dst, "r+b") as fh:
        fh.seek(offset + size - 3)
        byte = fh.read(1)
        fh.seek(offset + size - 3)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return dst


def test_bundle_refused_by_the_device_reports_its_error_and_installs_nothing(sshd, device, tmp_path):
    bad = tampered(add_bundle(tmp_path / "v2.edgepack", (1.0, 2.0), version="2"), tmp_path / "bad.edgepack")
    with pytest.raises(DeliveryError) as err:
        deliver(sshd.url(device), bad, device_cmd=DEVICE)
    exc = err.value
    assert exc.status is not None and exc.status["state"] == "failed", exc
    assert "sha256" in str(exc).lower() or "hash" in str(exc).lower(), exc
    assert "did not install" in str(exc) and "previous model keeps serving" in str(exc)
    assert sorted(p.suffixes[-2:] for p in (device / "inbox").iterdir()) == [[".install", ".rejected"]]
    assert active_bias(device) == [10.0, 20.0]


def test_unhealthy_bundle_is_rolled_back_and_reported(sshd, device, tmp_path):
    unhealthy = add_bundle(tmp_path / "v2.edgepack", (1.0, 2.0), version="2", sample_bias=(5.0, 5.0))
    with pytest.raises(DeliveryError, match="rolled_back") as err:
        deliver(sshd.url(device), unhealthy, device_cmd=DEVICE)
    assert err.value.status["state"] == "rolled_back"
    assert active_bias(device) == [10.0, 20.0]


def test_trust_keys_are_passed_to_the_device(sshd, device, tmp_path):
    """trust_keys are paths on the device: a bundle signed by that key installs, an unsigned one is refused."""
    from edgepack_runtime.signing import sign_bundle, write_keypair
    keys = write_keypair(tmp_path / "keys")
    pub = next(p for p in (tmp_path / "keys").iterdir() if p.suffix == ".pub")
    private = next(p for p in (tmp_path / "keys").iterdir() if p.suffix == ".key")
    unsigned = add_bundle(tmp_path / "v2.edgepack", (1.0, 2.0), version="2")
    with pytest.raises(DeliveryError, match="unsigned|not signed") as err:
        deliver(sshd.url(device), unsigned, device_cmd=DEVICE, trust_keys=[pub])
    assert err.value.status["state"] == "failed" and active_bias(device) == [10.0, 20.0]
    sign_bundle(unsigned, private)
    result = deliver(sshd.url(device), unsigned, device_cmd=DEVICE, trust_keys=[pub])
    assert result["status"]["state"] == "committed" and active_bias(device) == [1.0, 2.0]
    assert keys
