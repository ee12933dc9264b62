"""Open an ``.mlpackage``: a folder, a zip of it (path or bytes, as bundles store it), or a bare spec.

A package is ``Manifest.json`` (its ``rootModelIdentifier`` names the spec among ``itemInfoEntries``)
plus ``Data/<path of the spec>``; blob file values name weight files as ``@model_path/<rel>``, relative to
the folder holding the spec. Nothing is extracted to disk; weight files are read lazily.
"""
from __future__ import annotations

import io
import json
import posixpath
import zipfile
from pathlib import Path

from ...errors import BackendError
from .blob import BlobFile

DEFAULT_SPEC = "com.apple.CoreML/model.mlmodel"
MAX_MEMBER = 2 << 30
_HINT = "give an .mlpackage folder, or a zip whose root (or single top folder) holds Manifest.json"


class Package:
    """``spec_bytes`` and ``blob(file_name) -> BlobFile`` for one ML Program package."""

    def __init__(self, spec_bytes: bytes, read_weight, origin: str):
        self.spec_bytes, self._read, self.origin = spec_bytes, read_weight, origin
        self._blobs: dict[str, BlobFile] = {}

    def blob(self, file_name: str) -> BlobFile:
        rel = file_name.split("@model_path/", 1)[-1]
        if rel.startswith("/") or ".." in rel.split("/"):
            raise BackendError(f"{self.origin}: weight file name {file_name!r} leaves the package")
        if rel not in self._blobs:
            self._blobs[rel] = BlobFile(self._read(rel), f"{self.origin}:{rel}")
        return self._blobs[rel]


def open_package(source) -> Package:
    """``source``: bytes of a zipped package, a path to an ``.mlpackage`` folder or to a zip of one."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_zip(zipfile.ZipFile(io.BytesIO(bytes(source))), "model.mlpackage.zip")
    path = Path(source)
    if path.is_dir():
        return _from_folder(path)
    if zipfile.is_zipfile(path):
        return _from_zip(zipfile.ZipFile(path), path.name)
    raise BackendError(f"{path} is neither an .mlpackage folder nor a zip of one", hint=_HINT)


def _spec_path(manifest: dict) -> str:
    try:
        entry = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
        return str(entry["path"])
    except (KeyError, TypeError):
        return DEFAULT_SPEC


def _from_folder(root: Path) -> Package:
    manifest = root / "Manifest.json"
    rel = _spec_path(json.loads(manifest.read_text())) if manifest.is_file() else DEFAULT_SPEC
    spec = root / "Data" / rel
    if not spec.is_file():
        raise BackendError(f"{root}: no model spec at Data/{rel}", hint=_HINT)
    return Package(spec.read_bytes(), lambda r: (spec.parent / r).read_bytes(), root.name)


def _from_zip(zf: zipfile.ZipFile, origin: str) -> Package:
    names = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    manifests = sorted((n for n in names if posixpath.basename(n) == "Manifest.json"), key=lambda n: n.count("/"))
    if not manifests:
        raise BackendError(f"{origin}: no Manifest.json in the zip", hint=_HINT)
    prefix = posixpath.dirname(manifests[0])
    prefix = prefix + "/" if prefix else ""
    spec_name = f"{prefix}Data/{_spec_path(json.loads(_read(zf, names, manifests[0], origin)))}"
    spec_dir = posixpath.dirname(spec_name)
    return Package(_read(zf, names, spec_name, origin),
                   lambda r: _read(zf, names, f"{spec_dir}/{r}", origin), origin)


def _read(zf, names, member, origin) -> bytes:
    info = names.get(member)
    if info is None:
        raise BackendError(f"{origin}: member {member} is missing", hint=_HINT)
    if info.file_size > MAX_MEMBER:
        raise BackendError(f"{origin}: member {member} is {info.file_size} bytes, over the 2 GiB cap")
    return zf.read(info)
