"""The ``verifying`` step: bundle hashes, signature (``edgepack_runtime.signing``), device profile, disk space.

``signature`` is the one place the update path calls the signature checker.
"""
from __future__ import annotations

from pathlib import Path

from ..bundle import Bundle
from .errors import OtaError
from .health import suits

MARGIN = 1.1                 # bundle size x margin + headroom must be free before a slot copy
HEADROOM = 1 << 20


def signature(bundle: Bundle, trust_keys) -> dict:
    """The signature verdict of ``bundle`` (H4's ``signing.verify``); raises ``SignatureError`` when a device
    with trust keys must refuse it, and only notes "not checked" when it has none."""
    from ..signing import verify as check
    return check(bundle, trust_keys)


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
