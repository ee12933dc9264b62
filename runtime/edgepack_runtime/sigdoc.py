"""The ``signature.json`` document (format 1): a strict parser for untrusted bytes, and its writer.

Pure standard library (no ``cryptography``): a device without the ``signing`` extra can still read and
describe a signature. Every way a document can be wrong ends in one SignatureError naming the field; keys this format does
not define are ignored.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

from .errors import SignatureError

FORMAT = 1
ALGORITHM = "ed25519"
MAX_SIGNATURE_BYTES = 16 * 1024     # a real signature.json is about 300 bytes
MAX_SIGNER = 200
MAX_SIGNED_AT = 64
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_RESIGN = "re-sign the bundle with `edgepack sign BUNDLE --key PRIVATE`"


def fingerprint(public_raw: bytes) -> str:
    """Key id of a raw 32-byte Ed25519 public key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signature:
    """A parsed signature.json: raw ``public_key`` (32 bytes) and ``signature`` (64 bytes)."""
    key_id: str
    public_key: bytes
    signature: bytes
    signer: str | None
    signed_at: str

    def to_doc(self) -> dict:
        return {"format": FORMAT, "algorithm": ALGORITHM, "key_id": self.key_id,
                "public_key": base64.b64encode(self.public_key).decode(), "signer": self.signer,
                "signed_at": self.signed_at, "signature": base64.b64encode(self.signature).decode()}


def dumps_signature(doc: dict) -> bytes:
    """signature.json bytes: UTF-8 JSON, keys sorted, indent 1, trailing newline (like manifest.json)."""
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def parse_signature(data: bytes) -> Signature:
    """Parse and check signature.json bytes; SignatureError (never another exception) when malformed."""
    if len(data) > MAX_SIGNATURE_BYTES:
        raise SignatureError(f"signature.json is {len(data)} bytes, over the {MAX_SIGNATURE_BYTES}-byte limit",
                             hint=_RESIGN)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureError(f"signature.json is not UTF-8 JSON: {str(exc)[:120]}", hint=_RESIGN) from None
    if not isinstance(doc, dict):
        raise SignatureError(f"signature.json must hold a JSON object, not {type(doc).__name__}", hint=_RESIGN)
    fmt = doc.get("format")
    if type(fmt) is not int:
        raise SignatureError(f"signature.json format must be an integer, got {_short(fmt)}", hint=_RESIGN)
    if fmt != FORMAT:
        raise SignatureError(f"signature.json format {_short(fmt)} is not supported by this runtime (it reads "
                             f"format {FORMAT})", hint="upgrade edgepack-runtime, or re-sign the bundle with "
                             "a matching edgepack")
    if doc.get("algorithm") != ALGORITHM:
        raise SignatureError(f"signature.json algorithm {_short(doc.get('algorithm'))} is not supported "
                             f"(this runtime checks {ALGORITHM!r})", hint=_RESIGN)
    key_id = doc.get("key_id")
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise SignatureError(f"signature.json key_id {_short(key_id)} is not 16 lowercase hex digits",
                             hint=_RESIGN)
    public = _base64(doc, "public_key", 32)
    if fingerprint(public) != key_id:
        raise SignatureError(f"signature.json key_id {key_id} is not the fingerprint of its public_key "
                             f"({fingerprint(public)})", hint=_RESIGN)
    signer = None if doc.get("signer") is None else _text(doc, "signer", MAX_SIGNER)
    return Signature(key_id, public, _base64(doc, "signature", 64), signer, _text(doc, "signed_at", MAX_SIGNED_AT))


def _short(value) -> str:
    text = repr(value) if not isinstance(value, int) or abs(value) < 10 ** 30 else "a huge integer"
    return text if len(text) <= 40 else text[:37] + "..."


def _text(doc: dict, key: str, limit: int) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise SignatureError(f"signature.json {key} must be a string, got {_short(value)}", hint=_RESIGN)
    if len(value) > limit or _CONTROL.search(value):
        raise SignatureError(f"signature.json {key} must be at most {limit} printable characters, got "
                             f"{_short(value)}", hint=_RESIGN)
    return value


def _base64(doc: dict, key: str, size: int) -> bytes:
    value = doc.get(key)
    if not isinstance(value, str) or len(value) > 4 * size:
        raise SignatureError(f"signature.json {key} must be a base64 string of {size} bytes, got "
                             f"{_short(value)}", hint=_RESIGN)
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise SignatureError(f"signature.json {key} is not valid base64", hint=_RESIGN) from None
    if len(raw) != size:
        raise SignatureError(f"signature.json {key} holds {len(raw)} bytes, not {size}", hint=_RESIGN)
    return raw
