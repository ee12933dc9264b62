"""Ed25519 key files: trusted public keys for devices, private keys for signing (``cryptography`` needed).

Public keys are PEM SubjectPublicKeyInfo (``NAME.pub``); private keys PEM PKCS#8 (``NAME.key``), encrypted
with the passphrase in ``EDGEPACK_KEY_PASSPHRASE`` when that variable is set. Every problem with a key file
is an EdgepackError naming the file and the file to pass instead.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import EdgepackError
from .sigdoc import fingerprint

PASSPHRASE_ENV = "EDGEPACK_KEY_PASSPHRASE"
MAX_KEY_FILE = 64 * 1024


def crypto():
    """The ``cryptography`` modules this file uses, or an EdgepackError saying how to install them."""
    try:
        from cryptography import exceptions
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise EdgepackError("checking bundle signatures needs the 'cryptography' package, which is not installed",
                            hint="pip install edgepack-runtime[signing]") from None
    return exceptions, serialization, ed25519


@dataclass(frozen=True)
class TrustKey:
    """A public key this device trusts: ``key_id`` (fingerprint), the file it came from, its raw bytes."""
    key_id: str
    path: Path
    raw: bytes


def load_trust_keys(paths: Iterable[Path | str]) -> list[TrustKey]:
    """Read PEM Ed25519 public keys (``*.pub`` from ``edgepack keys generate``); duplicates kept once.

    No paths: an empty list, without importing ``cryptography``. EdgepackError on a missing, unreadable or
    wrong kind of key file (a private key, an RSA key) naming the file and what to pass instead."""
    keys: dict[str, TrustKey] = {}
    for p in paths:
        raw = _public_raw(Path(p))
        keys.setdefault(fingerprint(raw), TrustKey(fingerprint(raw), Path(p), raw))
    return list(keys.values())


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE:
            raise EdgepackError(f"{what} {path} is {path.stat().st_size} bytes: not a key file",
                                hint="pass the file written by `edgepack keys generate`")
        return path.read_bytes()
    except OSError as exc:
        raise EdgepackError(f"cannot read {what} {path}: {exc.strerror or exc}", hint="check the path") from None


def _public_raw(path: Path) -> bytes:
    data = _read_key_file(path, "trust key")
    exceptions, serialization, ed25519 = crypto()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, exceptions.UnsupportedAlgorithm):
        if b"PRIVATE KEY" in data:
            raise EdgepackError(f"trust key {path} is a private key; a device needs only the public key",
                                hint="pass the .pub file written by `edgepack keys generate`") from None
        raise EdgepackError(f"trust key {path} is not a PEM public key",
                            hint="pass the .pub file written by `edgepack keys generate`") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise EdgepackError(f"trust key {path} is a {type(key).__name__.lstrip('_')}, not an Ed25519 key",
                            hint="edgepack signs with Ed25519: make keys with `edgepack keys generate`")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private_key(source):
    """An Ed25519 private key from a PEM file path, PEM bytes or a key object (returned as is)."""
    exceptions, serialization, ed25519 = crypto()
    if isinstance(source, ed25519.Ed25519PrivateKey):
        return source
    name = "the given key bytes" if isinstance(source, bytes) else str(source)
    data = source if isinstance(source, bytes) else _read_key_file(Path(source), "signing key")
    secret = os.environ.get(PASSPHRASE_ENV)
    encrypted = b"ENCRYPTED PRIVATE KEY" in data
    try:
        key = serialization.load_pem_private_key(data, password=secret.encode() if secret and encrypted else None)
    except TypeError:
        raise EdgepackError(f"signing key {name} is encrypted", hint=f"set {PASSPHRASE_ENV} to its passphrase") from None
    except (ValueError, exceptions.UnsupportedAlgorithm):
        if encrypted:
            raise EdgepackError(f"cannot decrypt signing key {name}",
                                hint=f"check the passphrase in {PASSPHRASE_ENV}") from None
        if b"PUBLIC KEY" in data:
            raise EdgepackError(f"{name} is a public key; signing needs the private key",
                                hint="pass the .key file written by `edgepack keys generate`, not the .pub") from None
        raise EdgepackError(f"{name} is not a PEM private key",
                            hint="pass the .key file written by `edgepack keys generate`") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise EdgepackError(f"signing key {name} is a {type(key).__name__.lstrip('_')}, not an Ed25519 key",
                            hint="edgepack signs with Ed25519: make keys with `edgepack keys generate`")
    return key


def generate_keypair(passphrase: bytes | None = None) -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (private PEM PKCS#8, public PEM SubjectPublicKeyInfo); the private key is
    encrypted when a passphrase is given."""
    _, serialization, ed25519 = crypto()
    key = ed25519.Ed25519PrivateKey.generate()
    crypt = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, crypt)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def key_file_id(path) -> str:
    """The key id (fingerprint) of a public (.pub) or private (.key) key file."""
    path = Path(path)
    if b"PRIVATE KEY" not in _read_key_file(path, "key file"):
        return load_trust_keys([path])[0].key_id
    _, serialization, _ = crypto()
    public = load_private_key(path).public_key()
    return fingerprint(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
