"""Files of signing: signature.json written into a bundle (tar or folder) atomically, and key pair files.

A tar bundle is copied member by member, streaming, into a temporary sibling file (``manifest.json``
first, then the new ``signature.json``, then every other member in its original order, bytes unchanged
and re-hashed on the way against the manifest) that is renamed over the original; a crash leaves the old
bundle whole. A folder gets its ``signature.json`` replaced by rename.
"""
from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import tempfile
from pathlib import Path

from .archive import open_source
from .atomic import fsync_dir, write_atomic
from .errors import BundleError, EdgepackError
from .manifest import MANIFEST_NAME, RESERVED_NAMES, SIGNATURE_NAME


def write_signature(path: Path, bundle, data: bytes) -> None:
    """Put ``data`` as signature.json into the verified ``bundle`` stored at ``path`` (file or folder)."""
    if path.is_dir():
        write_atomic(path / SIGNATURE_NAME, data, mode=0o644)
    else:
        _rewrite_tar(path, bundle, data)


class _Reader:
    """A file-like view of a member's chunks for ``tarfile.addfile``, hashing what it hands out."""

    def __init__(self, chunks):
        self._chunks, self._cur, self._pos, self.digest = iter(chunks), b"", 0, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        parts = []
        while n != 0:
            if self._pos >= len(self._cur):
                self._cur, self._pos = next(self._chunks, b""), 0
                if not self._cur:
                    break
            take = len(self._cur) - self._pos if n < 0 else min(n, len(self._cur) - self._pos)
            parts.append(self._cur[self._pos:self._pos + take])
            self._pos += take
            n = n - take if n > 0 else n
        out = b"".join(parts)
        self.digest.update(out)
        return out


def _rewrite_tar(path: Path, bundle, data: bytes) -> None:
    source = open_source(path)
    if b"".join(source.chunks(MANIFEST_NAME)) != bundle.manifest_bytes:
        raise BundleError(f"{path} changed while it was being signed", hint="sign it again")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
                _add(tar, MANIFEST_NAME, len(bundle.manifest_bytes), _Reader([bundle.manifest_bytes]))
                _add(tar, SIGNATURE_NAME, len(data), _Reader([data]))
                for rel in (n for n in source.members if n not in RESERVED_NAMES):
                    reader = _Reader(source.chunks(rel))
                    _add(tar, rel, source.size(rel), reader)
                    if reader.digest.hexdigest() != bundle.manifest["files"][rel]["sha256"]:
                        raise BundleError(f"{path}: member {rel} changed while the bundle was being signed",
                                          hint="sign it again")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _add(tar: tarfile.TarFile, name: str, size: int, reader: _Reader) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    tar.addfile(info, reader)


def write_keypair(out_dir: Path, pems: tuple[bytes, bytes], *, name: str, force: bool) -> dict:
    """Write ``pems`` (private, public) as ``out_dir/NAME.key`` (0600) and ``out_dir/NAME.pub`` (0644).

    Refuses (before writing either) when one exists, unless ``force``. Returns the two paths."""
    if not name or "/" in name or name.startswith("."):
        raise EdgepackError(f"key name {name!r} must be a plain file name", hint="e.g. --name edgepack-signing")
    private, public = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    existing = [str(p) for p in (private, public) if p.exists() or p.is_symlink()]
    if existing and not force:
        raise EdgepackError(f"refusing to overwrite existing key file(s): {', '.join(existing)}",
                            hint="pick another --out or --name, or pass --force to replace them")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(private, pems[0], mode=0o600)
        write_atomic(public, pems[1], mode=0o644)
    except OSError as exc:
        raise EdgepackError(f"cannot write keys into {out_dir}: {exc.strerror or exc}",
                            hint="pick a writable --out folder") from None
    return {"private": private, "public": public}
