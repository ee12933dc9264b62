"""The ``verifying`` step: bundle hashes, signature (H4's ``edgepack_runtime.signing``), device profile, disk.

SIGNING SEAM: ``signature(bundle, trust_keys)`` calls ``edgepack_runtime.signing.verify`` when that module
exists. Until it does, a device with trust keys refuses every bundle (it cannot check what it was told to
check), and a device without trust keys accepts bundles with a note that nothing was verified.
"""
from __future__ import annotations

from pathlib import Path

from ..bundle import Bundle
from .errors import OtaError
from .health import suits

MARGIN = 1.1                 # bundle size x margin + headroom must be free before a slot copy
HEADROOM = 1 << 20


def signature(bundle: Bundle, trust_keys) -> dict:
    """The signature verdict of ``bundle`` (see the module docstring); raises when it must be refused."""
    try:
        from .. import signing
    except ImportError:
        signing = None
    if signing is not None and hasattr(signing, "verify"):
        keys = list(trust_keys)
        paths = [k for k in keys if isinstance(k, (str, Path))]
        if paths:                                  # key files given by path (CLI, agent config)
            keys = [k for k in keys if not isinstance(k, (str, Path))] + list(signing.load_trust_keys(paths))
        return signing.verify(bundle, keys)
    if trust_keys:
        raise OtaError("trust keys are set but this runtime has no signature checker (edgepack_runtime.signing)",
                       hint="install edgepack-runtime with signing support, or remove the trust keys")
    return {"signed": bundle.has("signature.json"), "verified": False, "key_id": None, "signer": None,
            "note": "no trust key set: signature not checked"}


def size_of(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def need_space(path: Path, free: int) -> None:
    """OtaError when copying the bundle at ``path`` would not fit in ``free`` bytes (with a margin)."""
    need = int(size_of(path) * MARGIN) + HEADROOM
    if need > free:
        raise OtaError(f"not enough disk space to install: the bundle needs {need} bytes with margin, "
                       f"{free} are free in the state folder", hint="free some space on the device, then retry")


def verify(path: Path, *, trust_keys=(), profile: str | None = None, free: int | None = None) -> dict:
    """Everything checked before a slot is written; returns ``{"model", "signature", "size"}``.

    Raises ``BundleError`` (corrupt, tampered, unsigned with trust keys) or ``OtaError`` (profile, disk)."""
    path = Path(path)
    if not path.exists():
        raise OtaError(f"the bundle to install is gone: {path}", hint="send or copy it again")
    bundle = Bundle.open(path)
    verdict = signature(bundle, trust_keys)
    why = suits(bundle.manifest, profile)
    if why:
        raise OtaError(why)
    if free is not None:
        need_space(path, free)
    model = bundle.manifest["model"]
    return {"model": {"name": model["name"], "version": model["version"]}, "signature": verdict,
            "size": size_of(path)}
