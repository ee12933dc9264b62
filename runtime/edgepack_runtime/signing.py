"""Ed25519 signatures of bundles: ``signature.json`` over the exact ``manifest.json`` bytes.

The manifest hashes every other member, so one signature over its bytes covers the whole bundle. The
signature lives only in the ``signature.json`` member (format 1; ``sigdoc`` parses it)::

    {"format": 1, "algorithm": "ed25519", "key_id": "<16 hex>", "public_key": "<base64, 32 bytes>",
     "signer": str|null, "signed_at": "ISO-8601 UTC", "signature": "<base64 of 64 bytes>"}

The manifest's own ``"signature"`` key stays ``null``: a signature cannot sit inside the bytes it signs,
and keeping the manifest untouched means signing (or re-signing) never changes ``manifest.json``.
``key_id`` is the first 16 hex digits of the sha256 of the raw 32-byte public key. ``signer`` and
``signed_at`` are informative only (not covered by the signature). Trust comes from the device's own
public keys (``load_trust_keys``), never from the ``public_key`` a bundle carries; that one only lets a
reader without trust keys tell whether the manifest still matches its signature.

Device-side checks need the optional ``cryptography`` package (``pip install edgepack-runtime[signing]``);
without trust keys nothing here needs it. Private keys are PEM PKCS#8, encrypted with the passphrase in
``EDGEPACK_KEY_PASSPHRASE`` when that variable is set.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .errors import EdgepackError, SignatureError
from .manifest import SIGNATURE_NAME
from .sigdoc import MAX_SIGNATURE_BYTES, MAX_SIGNER, Signature, dumps_signature, fingerprint, parse_signature
from .sigkeys import (PASSPHRASE_ENV, TrustKey, crypto, generate_keypair, key_file_id, load_private_key,
                      load_trust_keys)

__all__ = ["MAX_SIGNATURE_BYTES", "NOT_CHECKED", "PASSPHRASE_ENV", "Signature", "TrustKey", "fingerprint",
           "generate_keypair", "key_file_id", "load_private_key", "load_trust_keys", "parse_signature", "sign_bundle",
           "open_verified", "signature_doc", "trust_set", "verify", "write_keypair"]

NOT_CHECKED = "no trust key set: signature not checked"
_SIGN_IT = "sign it with `edgepack sign BUNDLE --key PRIVATE` (keys from `edgepack keys generate`)"


def write_keypair(out_dir, *, name: str = "edgepack-signing", force: bool = False) -> dict:
    """Write ``NAME.key`` (mode 0600) and ``NAME.pub`` into ``out_dir``; see ``sigfiles.write_keypair``."""
    from .sigfiles import write_keypair as write
    secret = os.environ.get(PASSPHRASE_ENV)
    return write(Path(out_dir), generate_keypair(secret.encode() if secret else None), name=name, force=force)


def signature_doc(private_key, manifest_bytes: bytes, *, signer: str | None = None) -> dict:
    """The signature.json document of ``manifest_bytes`` signed with ``private_key`` (path, PEM or key)."""
    _, serialization, _ = crypto()
    key = load_private_key(private_key)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    doc = Signature(fingerprint(raw), raw, key.sign(manifest_bytes), signer,
                    datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")).to_doc()
    try:
        parse_signature(dumps_signature(doc))        # the writer obeys the reader (signer length, characters)
    except SignatureError as exc:
        raise EdgepackError(f"cannot sign: {exc.message}",
                            hint=f"give a signer name of at most {MAX_SIGNER} printable characters") from None
    return doc


def sign_bundle(path, private_key, *, signer: str | None = None) -> dict:
    """Verify the bundle at ``path`` (file or folder) and (re)write its signature.json; return that document.

    The manifest and every other member stay byte for byte; a tar file is rewritten to a temporary file and
    renamed into place, a folder gets its signature.json replaced atomically."""
    from .bundle import Bundle
    from .sigfiles import write_signature
    key = load_private_key(private_key)
    bundle = Bundle.open(path)
    doc = signature_doc(key, bundle.manifest_bytes, signer=signer)
    try:
        write_signature(Path(path), bundle, dumps_signature(doc))
    except OSError as exc:
        raise EdgepackError(f"cannot write the signature into {path}: {exc.strerror or exc}",
                            hint="check that the bundle and its folder are writable, and the disk not full") from None
    return doc


def trust_set(trust_keys: Iterable) -> list[TrustKey]:
    """TrustKey objects from a mix of TrustKeys and public key file paths (read with ``load_trust_keys``)."""
    keys = list(trust_keys)
    return [k for k in keys if isinstance(k, TrustKey)] + load_trust_keys(
        [k for k in keys if not isinstance(k, TrustKey)])


def open_verified(path, trust_keys: Iterable = ()) -> tuple:
    """``(Bundle, verify report)`` for the bundle at ``path``: hashes checked by ``Bundle.open``, then the
    signature against ``trust_keys`` (TrustKeys or public key file paths; the keys are read first, so a bad
    key file is reported before the bundle is touched). SignatureError as ``verify``."""
    from .bundle import Bundle
    keys = trust_set(trust_keys)
    bundle = Bundle.open(path)
    return bundle, verify(bundle, keys)


def verify(bundle, trust_keys: Iterable[TrustKey] = ()) -> dict:
    """Check ``bundle``'s signature against ``trust_keys``; return what was found.

    ``{"signed", "verified", "key_id", "signer", "signed_at", "intact", "note"}``. With trust keys, an
    unsigned bundle, a malformed signature.json, a key not in the set, or a manifest changed after signing
    raises SignatureError. Without trust keys it never raises: ``verified`` is False and ``note`` says so;
    ``intact`` tells whether the manifest matches the signature's own key (None when unknown)."""
    trust = list(trust_keys)
    if not trust:
        return _unchecked(bundle)
    raw = _signature_bytes(bundle)
    if raw is None:
        raise SignatureError(f"bundle {bundle.path} is not signed, and this device accepts only signed bundles",
                             hint=_SIGN_IT)
    sig = parse_signature(raw)
    key = next((k for k in trust if k.key_id == sig.key_id), None)
    if key is None:
        ids = ", ".join(k.key_id for k in trust)
        raise SignatureError(f"bundle {bundle.path} is signed by key {sig.key_id}, which is not a trusted key "
                             f"(trusted: {ids})", hint="add its public key with --trust-key, or re-sign the "
                             "bundle with a trusted key: `edgepack sign BUNDLE --key PRIVATE`")
    if not _valid(key.raw, sig.signature, bundle.manifest_bytes):
        raise SignatureError(f"bundle {bundle.path}: the signature by key {sig.key_id} does not match "
                             "manifest.json: the manifest was changed after signing",
                             hint="re-download the bundle, or rebuild and sign it again")
    return dict(_described(sig), verified=True, intact=True,
                note=f"signature verified: key {sig.key_id} ({key.path.name})")


def _signature_bytes(bundle) -> bytes | None:
    """signature.json's bytes (None when absent), refused unread when it is over the size cap."""
    if not bundle.has(SIGNATURE_NAME):
        return None
    size = bundle.size(SIGNATURE_NAME)
    if size > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"signature.json is {size} bytes, over the {MAX_SIGNATURE_BYTES}-byte limit",
                             hint=f"re-sign the bundle: {_SIGN_IT}")
    return bundle.read(SIGNATURE_NAME)


def _unchecked(bundle) -> dict:
    signed = bundle.has(SIGNATURE_NAME)
    found = {"signed": signed, "verified": False, "key_id": None, "signer": None, "signed_at": None,
             "intact": None, "note": NOT_CHECKED + ("" if signed else " (the bundle is not signed)")}
    if not signed:
        return found
    try:
        sig = parse_signature(_signature_bytes(bundle))
    except SignatureError as exc:
        return dict(found, note=f"{NOT_CHECKED} (signature.json is malformed: {exc.message})")
    try:
        intact = _valid(sig.public_key, sig.signature, bundle.manifest_bytes)
    except EdgepackError:                               # no cryptography here: fine without trust keys
        intact = None
    detail = {True: "it matches its own key, which no trusted key vouches for",
              False: "and it does NOT match manifest.json: the manifest was changed after signing",
              None: "install edgepack-runtime[signing] to check it"}[intact]
    return dict(_described(sig), verified=False, intact=intact, note=f"{NOT_CHECKED} (signed by key "
                f"{sig.key_id}; {detail})")


def _described(sig: Signature) -> dict:
    return {"signed": True, "key_id": sig.key_id, "signer": sig.signer, "signed_at": sig.signed_at}


def _valid(public_raw: bytes, signature: bytes, data: bytes) -> bool:
    exceptions, _, ed25519 = crypto()
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, data)
    except exceptions.InvalidSignature:
        return False
    return True
