"""Error hierarchy shared by the device runtime and the host packager.

    EdgepackError                 base; every error carries a one-line message and a hint
    ├── BundleError               bundle unreadable, tampered (hash mismatch), unknown format version
    │   └── SignatureError        refused by its signature: unsigned, signed by an untrusted key, manifest
    │                             changed after signing, or a malformed signature.json (with trust keys set)
    ├── InputError                wrong input name, shape or dtype at inference
    ├── BackendError              no usable backend, or a backend failed to load/run
    ├── OtaError                  an update cannot start or run (no previous slot, disk full, ota.json unusable)
    └── (host side, edgepack.errors)
        ├── ModelError            not ONNX, fails the checker, missing external data
        ├── DynamicShapeError     dynamic dimensions left unfixed
        ├── UnsupportedOpsError   ops a target cannot express (all listed at once)
        ├── ConversionError       a converter failed on a supported op
        └── ParityError           converted model does not match the reference

Each class has an ``exit_code`` the CLIs use, so scripts can tell failures apart.
"""
from __future__ import annotations


class EdgepackError(Exception):
    """Base error: ``str(err)`` is one readable line; ``hint`` says what to do next."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class BundleError(EdgepackError):
    exit_code = 6


class SignatureError(BundleError):
    """The bundle's signature does not let a device with trust keys accept it (exit code 6, as BundleError)."""


class InputError(EdgepackError, ValueError):
    exit_code = 7


class BackendError(EdgepackError):
    exit_code = 8


class OtaError(EdgepackError):
    """A device update cannot start or run (edgepack_runtime.ota); exit code 11."""
    exit_code = 11
