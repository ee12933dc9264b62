"""`edgepack-device run|check|info --trust-key PUB`: verified, refused with the reason (exit 6), or noted as
not checked; once through the installed entry point in a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from edgepack_runtime.cli import main
from edgepack_runtime.signing import NOT_CHECKED, sign_bundle

from .test_signing_lib import _patch_manifest


def _device(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_and_run_verify_with_the_right_key(bundle, keys, tmp_path, capsys):
    sign_bundle(bundle, keys["a"]["private"], signer="ci")
    code, out, err = _device(capsys, "check", bundle, "--trust-key", keys["a"]["public"])
    assert code == 0, err
    assert f"  signature: signature verified: key {keys['a']['key_id']} (a.pub)" in out.splitlines()
    assert "self-check passed on 2 sample(s)" in out
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    code, out, err = _device(capsys, "run", bundle, "--input", tmp_path / "x.npy", "--json",
                             "--trust-key", keys["b"]["public"], "--trust-key", keys["a"]["public"])
    report = json.loads(out)
    assert code == 0 and report["outputs"]["y"]["head"] == [1.0] * 4
    assert report["signature"]["verified"] and report["signature"]["key_id"] == keys["a"]["key_id"]
    assert report["signature"]["signer"] == "ci"
    code, out, _ = _device(capsys, "info", bundle, "--json", "--trust-key", keys["a"]["public"])
    assert code == 0 and json.loads(out)["signature"]["verified"] is True


def test_refusals_exit_6_with_one_line(bundle, keys, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    code, out, err = _device(capsys, "run", bundle, "--input", tmp_path / "x.npy", "--trust-key", keys["a"]["public"])
    assert code == 6 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: bundle {bundle} is not signed, and this device accepts only signed bundles")
    sign_bundle(bundle, keys["b"]["private"])
    code, _, err = _device(capsys, "check", bundle, "--trust-key", keys["a"]["public"])
    assert code == 6 and f"signed by key {keys['b']['key_id']}, which is not a trusted key" in err
    _patch_manifest(bundle, b'"version": "1"', b'"version": "2"')
    code, _, err = _device(capsys, "info", bundle, "--trust-key", keys["b"]["public"])
    assert code == 6 and "does not match manifest.json: the manifest was changed after signing" in err
    code, _, err = _device(capsys, "check", bundle, "--trust-key", keys["b"]["private"])
    assert code == 1 and "is a private key; a device needs only the public key" in err


def test_without_trust_keys_the_device_says_nothing_was_checked(bundle, keys, capsys):
    code, out, _ = _device(capsys, "check", bundle)
    assert code == 0 and f"  signature: {NOT_CHECKED} (the bundle is not signed)" in out.splitlines()
    sign_bundle(bundle, keys["a"]["private"])
    code, out, _ = _device(capsys, "info", bundle)
    assert code == 0 and "signed: yes" in out and f"{NOT_CHECKED} (signed by key {keys['a']['key_id']};" in out
    code, out, _ = _device(capsys, "check", bundle, "--json")
    got = json.loads(out)["signature"]
    assert got["verified"] is False and got["intact"] is True and got["note"].startswith(NOT_CHECKED)


def test_the_entry_point_in_a_subprocess(bundle, keys):
    sign_bundle(bundle, keys["a"]["private"])
    ok = subprocess.run([sys.executable, "-m", "edgepack_runtime.cli", "check", str(bundle), "--json",
                         "--trust-key", str(keys["a"]["public"])], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["signature"]["key_id"] == keys["a"]["key_id"]
    bad = subprocess.run([sys.executable, "-m", "edgepack_runtime.cli", "check", str(bundle),
                          "--trust-key", str(keys["b"]["public"])], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 6 and keys["a"]["key_id"] in bad.stderr
