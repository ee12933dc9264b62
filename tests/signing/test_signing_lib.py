"""The signing library on real keys and real bundles: sign, verify, refuse, re-sign, key files."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile

import pytest

from edgepack_runtime.bundle import Bundle, unpack_bundle
from edgepack_runtime.errors import BundleError, EdgepackError, SignatureError
from edgepack_runtime.signing import (NOT_CHECKED, PASSPHRASE_ENV, key_file_id, load_private_key,
                                      load_trust_keys, parse_signature, sign_bundle, verify, write_keypair)


def _members(path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _patch_manifest(path, old: bytes, new: bytes) -> None:
    """Change manifest.json inside the tar in place, same length, JSON still valid (a forged edit)."""
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    path.write_bytes(data.replace(old, new))


def test_sign_then_verify_keeps_every_member_byte_for_byte(bundle, keys):
    before = _members(bundle)
    doc = sign_bundle(bundle, keys["a"]["private"], signer="release bot")
    after = _members(bundle)
    assert [n for n, _ in after] == ["manifest.json", "signature.json"] + [n for n, _ in before[1:]]
    assert dict(after) == dict(before, **{"signature.json": dict(after)["signature.json"]})
    sig = json.loads(dict(after)["signature.json"])
    assert sig == doc and sig["format"] == 1 and sig["algorithm"] == "ed25519"
    assert sig["key_id"] == keys["a"]["key_id"] and len(sig["key_id"]) == 16 and sig["signer"] == "release bot"
    b = Bundle.open(bundle)
    assert b.manifest["signature"] is None                  # the signature never sits inside what it signs
    got = verify(b, load_trust_keys([keys["b"]["public"], keys["a"]["public"]]))
    assert got["verified"] and got["signed"] and got["intact"]
    assert got["key_id"] == keys["a"]["key_id"] and got["signer"] == "release bot"
    assert got["note"] == f"signature verified: key {keys['a']['key_id']} (a.pub)"


def test_unknown_key_is_refused_naming_it(bundle, keys):
    sign_bundle(bundle, keys["a"]["private"])
    with pytest.raises(SignatureError) as err:
        verify(Bundle.open(bundle), load_trust_keys([keys["b"]["public"]]))
    assert f"signed by key {keys['a']['key_id']}, which is not a trusted key" in str(err.value)
    assert f"trusted: {keys['b']['key_id']}" in str(err.value) and err.value.exit_code == 6


def test_manifest_changed_after_signing_is_refused(bundle, keys):
    sign_bundle(bundle, keys["a"]["private"])
    _patch_manifest(bundle, b'"version": "1"', b'"version": "9"')
    b = Bundle.open(bundle)                                 # hashes of the members are still fine
    assert b.manifest["model"]["version"] == "9"
    with pytest.raises(SignatureError, match="does not match manifest.json: the manifest was changed after"):
        verify(b, load_trust_keys([keys["a"]["public"]]))
    unchecked = verify(b)
    assert unchecked["verified"] is False and unchecked["intact"] is False
    assert unchecked["note"].startswith(NOT_CHECKED) and "does NOT match manifest.json" in unchecked["note"]


def test_unsigned_refused_with_trust_keys_and_noted_without(bundle, keys):
    with pytest.raises(SignatureError, match="is not signed, and this device accepts only signed bundles") as err:
        verify(Bundle.open(bundle), load_trust_keys([keys["a"]["public"]]))
    assert "edgepack sign" in err.value.hint
    assert verify(Bundle.open(bundle)) == {
        "signed": False, "verified": False, "key_id": None, "signer": None, "signed_at": None, "intact": None,
        "note": "no trust key set: signature not checked (the bundle is not signed)"}


def test_tampered_member_is_caught_by_the_hashes(bundle, keys):
    sign_bundle(bundle, keys["a"]["private"])
    data = bundle.read_bytes()
    at = data.index(b"PK\x03\x04")                           # inside the first sample's npz member
    bundle.write_bytes(data[:at + 40] + bytes([data[at + 40] ^ 1]) + data[at + 41:])
    with pytest.raises(BundleError, match="is corrupt: sha256 mismatch"):
        Bundle.open(bundle)
    with pytest.raises(BundleError):                        # and nothing gets signed over it
        sign_bundle(bundle, keys["b"]["private"])


def test_resign_with_another_key_replaces_the_signature(bundle, keys):
    sign_bundle(bundle, keys["a"]["private"])
    sign_bundle(bundle, keys["b"]["private"])
    assert [n for n, _ in _members(bundle)].count("signature.json") == 1
    b = Bundle.open(bundle)
    assert verify(b, load_trust_keys([keys["b"]["public"]]))["key_id"] == keys["b"]["key_id"]
    with pytest.raises(SignatureError, match=keys["b"]["key_id"]):
        verify(b, load_trust_keys([keys["a"]["public"]]))


def test_folder_bundle_is_signed_in_place(bundle, keys, tmp_path):
    folder = unpack_bundle(bundle, tmp_path / "unpacked")
    before = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    sign_bundle(folder, keys["b"]["private"])
    after = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert set(after) == set(before) | {"signature.json"}
    assert all(after[k] == v for k, v in before.items())
    assert verify(Bundle.open(folder), load_trust_keys([keys["b"]["public"]]))["verified"]


def test_oversized_signature_json_is_refused_unread(bundle, keys, tmp_path):
    folder = unpack_bundle(bundle, tmp_path / "unpacked")
    (folder / "signature.json").write_bytes(b" " * (1 << 20))
    with pytest.raises(SignatureError, match=r"signature.json is 1048576 bytes, over the 16384-byte limit"):
        verify(Bundle.open(folder), load_trust_keys([keys["a"]["public"]]))
    assert "signature.json is malformed: signature.json is 1048576 bytes" in verify(Bundle.open(folder))["note"]


def test_key_pair_files(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    paths = write_keypair(tmp_path / "k")
    assert paths["private"].name == "edgepack-signing.key" and "pub" in paths["public"].name
    assert stat.S_IMODE(paths["private"].stat().st_mode) == 0o600
    assert paths["private"].read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert paths["public"].read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    old = paths["private"].read_bytes()
    with pytest.raises(EdgepackError, match="refusing to overwrite existing key file"):
        write_keypair(tmp_path / "k")
    assert paths["private"].read_bytes() == old
    write_keypair(tmp_path / "k", force=True)
    assert paths["private"].read_bytes() != old and stat.S_IMODE(paths["private"].stat().st_mode) == 0o600
    assert key_file_id(paths["private"]) == key_file_id(paths["public"]) == \
        load_trust_keys([paths["public"], paths["public"]])[0].key_id


def test_passphrase_protected_key(bundle, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    paths = write_keypair(tmp_path)
    assert b"ENCRYPTED PRIVATE KEY" in paths["private"].read_bytes()
    sign_bundle(bundle, paths["private"])
    assert verify(Bundle.open(bundle), load_trust_keys([paths["public"]]))["verified"]
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(EdgepackError, match="cannot decrypt signing key"):
        load_private_key(paths["private"])
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(EdgepackError, match="is encrypted") as err:
        load_private_key(paths["private"])
    assert PASSPHRASE_ENV in err.value.hint


def test_wrong_key_files_are_named(keys, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    with pytest.raises(EdgepackError, match="is a private key; a device needs only the public key"):
        load_trust_keys([keys["a"]["private"]])
    with pytest.raises(EdgepackError, match="is a public key; signing needs the private key"):
        load_private_key(keys["a"]["public"])
    with pytest.raises(EdgepackError, match="cannot read trust key .*missing.pub"):
        load_trust_keys([tmp_path / "missing.pub"])
    (tmp_path / "junk.pub").write_text("hello")
    with pytest.raises(EdgepackError, match="is not a PEM public key"):
        load_trust_keys([tmp_path / "junk.pub"])
    ec_pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "ec.pub").write_bytes(ec_pub)
    with pytest.raises(EdgepackError, match="not an Ed25519 key"):
        load_trust_keys([tmp_path / "ec.pub"])


def test_signer_name_is_bounded(bundle, keys):
    with pytest.raises(EdgepackError, match="cannot sign: signature.json signer must be at most 200"):
        sign_bundle(bundle, keys["a"]["private"], signer="x" * 201)
    assert not Bundle.open(bundle).has("signature.json")


NO_CRYPTO = """
import sys
sys.modules["cryptography"] = None          # as on a device without the signing extra
from edgepack_runtime.bundle import Bundle
from edgepack_runtime.errors import EdgepackError
from edgepack_runtime.signing import load_trust_keys, verify
print(verify(Bundle.open(sys.argv[1]), load_trust_keys([]))["note"])
try:
    load_trust_keys([sys.argv[2]])
except EdgepackError as exc:
    print(exc)
"""


def test_without_cryptography_only_trust_keys_need_it(bundle, keys):
    sign_bundle(bundle, keys["a"]["private"])
    out = subprocess.run([sys.executable, "-c", NO_CRYPTO, str(bundle), str(keys["a"]["public"])],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == (f"{NOT_CHECKED} (signed by key {keys['a']['key_id']}; install "
                        "edgepack-runtime[signing] to check it)")
    assert lines[1] == ("checking bundle signatures needs the 'cryptography' package, which is not installed "
                        "(pip install edgepack-runtime[signing])")


def test_written_signature_parses(bundle, keys):
    doc = sign_bundle(bundle, keys["a"]["private"])
    sig = parse_signature(Bundle.open(bundle).read("signature.json"))
    assert sig.key_id == doc["key_id"] and len(sig.signature) == 64 and len(sig.public_key) == 32
