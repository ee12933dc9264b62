"""signature.json is untrusted input: every byte string, JSON value and mutation of a valid document ends
in a Signature or a SignatureError, never another exception; verify() with trust keys only ever refuses."""
from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepack_runtime.bundle import Bundle, unpack_bundle
from edgepack_runtime.errors import SignatureError
from edgepack_runtime.sigdoc import MAX_SIGNATURE_BYTES, Signature, dumps_signature, fingerprint, parse_signature
from edgepack_runtime.signing import NOT_CHECKED, load_trust_keys, sign_bundle, verify

from .conftest import tiny_bundle

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=20)
FIELDS = ["format", "algorithm", "key_id", "public_key", "signer", "signed_at", "signature"]
PUBLIC = bytes(range(32))
VALID = Signature(fingerprint(PUBLIC), PUBLIC, bytes(64), "ci", "2025-01-01T00:00:00Z").to_doc()


def _parses_or_refuses(data: bytes):
    try:
        sig = parse_signature(data)
    except SignatureError as exc:
        assert str(exc).startswith("signature.json ") and len(str(exc)) < 400
        return None
    assert len(sig.public_key) == 32 and len(sig.signature) == 64 and sig.key_id == fingerprint(sig.public_key)
    assert sig.signer is None or (isinstance(sig.signer, str) and len(sig.signer) <= 200)
    return sig


@given(st.binary(max_size=600))
def test_any_bytes(data):
    _parses_or_refuses(data)


@given(JSON)
def test_any_json_value(value):
    assert _parses_or_refuses(json.dumps(value).encode()) is None


@given(st.sampled_from(FIELDS), JSON | st.sampled_from([1, 2, "ed25519", "AAAA", "=" * 44, "é" * 44]))
def test_one_field_replaced(field, value):
    doc = dict(VALID, **{field: value})
    sig = _parses_or_refuses(dumps_signature(doc))
    if field not in ("signer", "signed_at") and value != VALID[field]:
        assert sig is None, doc


@given(st.sets(st.sampled_from(FIELDS), min_size=1))
def test_fields_removed(gone):
    sig = _parses_or_refuses(dumps_signature({k: v for k, v in VALID.items() if k not in gone}))
    assert (sig is not None) == (gone == {"signer"})


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64),
       st.none() | st.text(alphabet=st.characters(codec="utf-8", min_codepoint=0x20).filter(
           lambda c: not 0x7f <= ord(c) <= 0x9f and c not in "\u2028\u2029"), max_size=200))
def test_round_trip(public, signature, signer):
    sig = Signature(fingerprint(public), public, signature, signer, "2025-01-01T00:00:00Z")
    assert parse_signature(dumps_signature(sig.to_doc())) == sig


def test_limits_and_versions():
    with pytest.raises(SignatureError, match="over the 16384-byte limit"):
        parse_signature(b" " * (MAX_SIGNATURE_BYTES + 1))
    with pytest.raises(SignatureError, match="format 2 is not supported by this runtime") as err:
        parse_signature(dumps_signature(dict(VALID, format=2)))
    assert "upgrade edgepack-runtime" in err.value.hint
    with pytest.raises(SignatureError, match="not UTF-8 JSON"):
        parse_signature(b"[" * 100_00)
    with pytest.raises(SignatureError, match="public_key holds 31 bytes, not 32"):
        parse_signature(dumps_signature(dict(VALID, public_key=base64.b64encode(bytes(31)).decode())))
    with pytest.raises(SignatureError, match="key_id .* is not the fingerprint of its public_key"):
        parse_signature(dumps_signature(dict(VALID, key_id="0" * 16)))
    with pytest.raises(SignatureError, match="format must be an integer, got True"):
        parse_signature(dumps_signature(dict(VALID, format=True)))


@pytest.fixture(scope="module")
def folder(tmp_path_factory, keys):
    path = tiny_bundle(tmp_path_factory.mktemp("b") / "tiny.edgepack")
    sign_bundle(path, keys["a"]["private"])
    return unpack_bundle(path, tmp_path_factory.mktemp("u") / "tiny")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | JSON.map(lambda v: json.dumps(v).encode()))
def test_verify_on_any_signature_file(folder, keys, data):
    (folder / "signature.json").write_bytes(data)
    bundle = Bundle.open(folder)
    with pytest.raises(SignatureError):
        verify(bundle, load_trust_keys([keys["a"]["public"]]))
    got = verify(bundle)
    assert got["verified"] is False and got["note"].startswith(NOT_CHECKED)
