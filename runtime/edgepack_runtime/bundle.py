"""The edgepack bundle: one file on the wire, one folder on disk.

Wire form: an uncompressed POSIX (pax) tar whose first member is ``manifest.json``. Disk form: a folder
holding the same members. Members:

- ``manifest.json``: UTF-8 JSON, keys sorted, indent 1 (see below).
- ``signature.json``: optional, reserved for an Ed25519 signature over the exact ``manifest.json`` bytes
  (``Bundle.manifest_bytes``); readers accept it missing; unsigned manifests say ``"signature": null``.
- ``models/<target>/...`` model files, ``samples/*.npz`` health-check samples, anything else in ``files``.

Manifest (``format_version`` "1.0"; readers reject another MAJOR version)::

    {"format": "edgepack-bundle", "format_version": "1.0",
     "model": {"name", "version", "source_sha256", "opsets": {domain: int}},
     "created": ISO-8601 UTC, "tools": {package: version},
     "inputs":  [{"name", "shape": [int, ...], "dtype": "float32"|..., "layout": "NCHW"|null}],
     "outputs": [same],
     "targets": [{"name": "cpu", "format": "tflite"|"onnx", "file": "models/cpu/model.tflite",
                  "precision": "fp32", "io": {"inputs": [{"name", "perm": [...]|null}], "outputs": [...]},
                  "parity": {...}, "info": {...}}],
     "samples": [{"file": "samples/sample_000.npz"}],
     "files": {relpath: {"sha256": hex, "size": int}},   # every member but manifest.json/signature.json
     "signature": null}

``io``: the model file's i-th input (in the model's own order) is the public input ``name``, fed as
``np.transpose(public, perm)``; the model's i-th output is public output ``name``, recovered as
``np.transpose(internal, np.argsort(perm))``; ``perm`` null means unchanged. A sample npz holds
``input_0..`` and ``output_0..`` in manifest order, in public layout. A shape dim of -1 means "any".
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import manifest as mf
from .archive import DEFAULT_MAX_MEMBER_SIZE, open_source
from .errors import BundleError

__all__ = ["Bundle", "DEFAULT_MAX_MEMBER_SIZE", "bundle_document", "unpack_bundle", "write_bundle"]
_REDOWNLOAD = "rebuild or re-download the bundle"


def bundle_document(manifest: dict, files: dict[str, bytes]) -> dict:
    """The manifest exactly as ``write_bundle`` writes it for ``files``: ``format``, ``format_version`` and
    ``files`` (sha256 and size of every member) filled in, ``signature`` (null) and ``created`` (now, UTC)
    when absent; validated. BundleError on a bad member path or a reserved name in ``files``."""
    doc = dict(manifest, format=mf.FORMAT, format_version=mf.FORMAT_VERSION)
    doc.setdefault("signature", None)
    doc.setdefault("created", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    for rel in files:
        mf.check_relpath(rel)
        if rel in mf.RESERVED_NAMES:
            raise BundleError(f"{rel} is written by write_bundle itself; leave it out of files")
    doc["files"] = {rel: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                    for rel, data in sorted(files.items())}
    mf.validate(doc)
    return doc


def write_bundle(out: str | Path, manifest: dict, files: dict[str, bytes]) -> Path:
    """Write a bundle tar file atomically and return its path.

    The manifest is ``bundle_document(manifest, files)``, validated so a written bundle always opens.
    ``files`` maps relative POSIX paths to member bytes.
    """
    out = Path(out)
    doc = bundle_document(manifest, files)
    members = [(mf.MANIFEST_NAME, mf.dumps(doc))] + sorted(files.items())
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for rel, data in members:
                    info = tarfile.TarInfo(rel)
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


class _MemorySource:
    """Members held in memory (name -> bytes), read through the same interface as a tar or a folder."""

    def __init__(self, members: dict[str, bytes]):
        self._data = members
        self.members = dict.fromkeys(members)

    def size(self, name: str) -> int:
        return len(self._data[name])

    def chunks(self, name: str):
        yield self._data[name]


class Bundle:
    """A verified bundle (tar file or folder). Create with ``Bundle.open(path)``."""

    def __init__(self, path: Path, source, manifest_bytes: bytes, manifest: dict):
        self._path, self._source = path, source
        self._manifest_bytes, self._manifest = manifest_bytes, manifest

    @classmethod
    def open(cls, path: str | Path, *, max_member_size: int = DEFAULT_MAX_MEMBER_SIZE) -> "Bundle":
        """Open and fully verify a bundle: structure, manifest schema, version, every member's hash."""
        path = Path(path)
        source = open_source(path, max_member_size)
        if mf.MANIFEST_NAME not in source.members:
            raise BundleError(f"{path} has no manifest.json; it is not an edgepack bundle",
                              hint=_REDOWNLOAD)
        raw = b"".join(source.chunks(mf.MANIFEST_NAME))
        doc = mf.loads(raw)
        mf.check_version(doc)
        mf.validate(doc)
        extra = sorted(set(source.members) - set(doc["files"]) - mf.RESERVED_NAMES)
        if extra:
            raise BundleError(f"bundle holds {len(extra)} member(s) not listed in its manifest: {_some(extra)}",
                              hint=_REDOWNLOAD)
        bundle = cls(path, source, raw, doc)
        for rel in doc["files"]:
            bundle._verified(rel, keep=False)
        return bundle

    @classmethod
    def from_files(cls, manifest: dict, files: dict[str, bytes], *, name: str = "<memory>") -> "Bundle":
        """The bundle ``write_bundle(path, manifest, files)`` would write, held in memory (nothing on disk).

        Its manifest bytes are exactly the ones ``write_bundle`` writes for the same arguments (given the
        same ``created``), and ``read`` verifies each member against the manifest as for a file, so a
        runtime opened on it runs the very bytes that will ship. Member bytes are referenced, not copied.
        """
        doc = bundle_document(manifest, files)
        raw = mf.dumps(doc)
        return cls(Path(name), _MemorySource({**files, mf.MANIFEST_NAME: raw}), raw, mf.loads(raw))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def manifest(self) -> dict:
        """The parsed manifest (treat as read-only)."""
        return self._manifest

    @property
    def manifest_bytes(self) -> bytes:
        """The exact bytes of manifest.json, which a signature covers."""
        return self._manifest_bytes

    def has(self, relpath: str) -> bool:
        return relpath in self._source.members

    def size(self, relpath: str) -> int:
        """Stored size in bytes of member ``relpath``, known before it is read (a reader can refuse a huge one)."""
        return self._source.size(relpath)

    def read(self, relpath: str) -> bytes:
        """Bytes of one member, re-verified against the manifest's size and sha256."""
        if relpath == mf.MANIFEST_NAME:
            return self._manifest_bytes
        if relpath == mf.SIGNATURE_NAME and self.has(relpath):
            return b"".join(self._source.chunks(relpath))
        return self._verified(relpath, keep=True)

    def _verified(self, relpath: str, keep: bool) -> bytes:
        entry = self._manifest["files"].get(relpath)
        if entry is None:
            raise BundleError(f"bundle has no member {relpath}; members: {_some(sorted(self._manifest['files']))}")
        if not self.has(relpath):
            raise BundleError(f"bundle member {relpath} is missing", hint=_REDOWNLOAD)
        if self._source.size(relpath) != entry["size"]:
            raise BundleError(f"bundle member {relpath} is corrupt: size {self._source.size(relpath)} "
                              f"!= {entry['size']} in the manifest", hint=_REDOWNLOAD)
        digest, parts = hashlib.sha256(), []
        for block in self._source.chunks(relpath):
            digest.update(block)
            if keep:
                parts.append(block)
        if digest.hexdigest() != entry["sha256"]:
            raise BundleError(f"bundle member {relpath} is corrupt: sha256 mismatch (got "
                              f"{digest.hexdigest()[:12]}…, manifest says {entry['sha256'][:12]}…)",
                              hint=_REDOWNLOAD)
        return b"".join(parts)

    def target(self, name: str) -> dict:
        """The manifest entry of target ``name``."""
        for entry in self._manifest["targets"]:
            if entry["name"] == name:
                return entry
        names = ", ".join(t["name"] for t in self._manifest["targets"])
        raise BundleError(f"bundle has no target {name!r}; it has: {names}")

    def samples(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """The health-check samples as (inputs, reference outputs), keyed by public tensor names."""
        result = []
        for sample in self._manifest["samples"]:
            try:
                with np.load(io.BytesIO(self.read(sample["file"])), allow_pickle=False) as npz:
                    arrays = {key: npz[key] for key in npz.files}
            except (ValueError, OSError) as exc:
                raise BundleError(f"sample {sample['file']} is not a readable npz: {exc}",
                                  hint=_REDOWNLOAD) from None
            result.append(tuple(self._named(arrays, sample["file"], kind) for kind in ("input", "output")))
        return result

    def _named(self, arrays, rel, kind):
        specs = self._manifest[f"{kind}s"]
        missing = [f"{kind}_{i}" for i in range(len(specs)) if f"{kind}_{i}" not in arrays]
        if missing:
            raise BundleError(f"sample {rel} lacks {', '.join(missing)}", hint=_REDOWNLOAD)
        return {spec["name"]: arrays[f"{kind}_{i}"] for i, spec in enumerate(specs)}


def _some(names: list[str], shown: int = 5) -> str:
    """The first few names and how many more: an error message stays one short line."""
    head = ", ".join(n[:200] for n in names[:shown])
    return head + (f" ... and {len(names) - shown} more" if len(names) > shown else "")


def unpack_bundle(src: str | Path, dest_dir: str | Path, *,
                  max_member_size: int = DEFAULT_MAX_MEMBER_SIZE) -> Path:
    """Verify ``src`` and extract it into the new or empty folder ``dest_dir``; return that folder.

    Members are verified before they are written; extraction goes to a temporary sibling folder
    that is renamed into place, so ``dest_dir`` never holds half a bundle.
    """
    bundle = Bundle.open(src, max_member_size=max_member_size)
    dest = Path(dest_dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BundleError(f"cannot unpack into {dest}: it exists and is not an empty folder",
                          hint="choose a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o755)
        names = [mf.MANIFEST_NAME, *bundle.manifest["files"]]
        if bundle.has(mf.SIGNATURE_NAME):
            names.append(mf.SIGNATURE_NAME)
        for rel in names:
            target = tmp / mf.check_relpath(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(bundle.read(rel))
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
