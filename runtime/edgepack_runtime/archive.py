"""Safe, read-only access to the members of a bundle, whether a tar file or an unpacked folder.

Both sources index their members up front and refuse anything a bundle may not hold: absolute paths,
``..``, links, devices, duplicate names, members over the size cap, and (for tar) truncated archives.
Member bytes are read on demand, so a bundle is never held in memory as a whole.
"""
from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import BundleError
from .manifest import check_relpath

DEFAULT_MAX_MEMBER_SIZE = 2 * 1024 ** 3
CHUNK = 1 << 20
_REDOWNLOAD = "rebuild or re-download the bundle"


def open_source(path: Path, max_member_size: int = DEFAULT_MAX_MEMBER_SIZE):
    """Return a TarSource or FolderSource for ``path``; BundleError if it is neither."""
    if path.is_dir():
        return FolderSource(path, max_member_size)
    if not path.exists():
        raise BundleError(f"no bundle at {path}", hint="check the path")
    return TarSource(path, max_member_size)


def _check_size(name: str, size: int, cap: int) -> None:
    if size > cap:
        raise BundleError(f"bundle member {name} is {size} bytes, over the {cap}-byte member cap",
                          hint="raise max_member_size if this bundle is trusted")


class TarSource:
    """Members of an uncompressed tar file, indexed as ``name -> (data offset, size)``."""

    def __init__(self, path: Path, max_member_size: int):
        self.path = path
        self.members: dict[str, tuple[int, int]] = {}
        file_size = path.stat().st_size
        try:
            with tarfile.open(path, "r:") as tar:
                infos = tar.getmembers()
        except (tarfile.TarError, EOFError) as exc:
            raise BundleError(f"{path} is not a readable bundle (uncompressed tar): {exc}",
                              hint=_REDOWNLOAD) from None
        for info in infos:
            name = info.name[2:] if info.name.startswith("./") else info.name
            if info.isdir() and name.rstrip("/") in ("", "."):
                continue
            check_relpath(name.rstrip("/") if info.isdir() else name)
            if info.isdir():
                continue
            if not info.isreg():
                raise BundleError(f"bundle member {name} is a link or special file; bundles may only "
                                  "hold regular files", hint=_REDOWNLOAD)
            _check_size(name, info.size, max_member_size)
            if info.offset_data + info.size > file_size:
                raise BundleError(f"{path} is truncated: member {name} ends past the end of the file",
                                  hint=_REDOWNLOAD)
            if name in self.members:
                raise BundleError(f"bundle member {name} appears twice", hint=_REDOWNLOAD)
            self.members[name] = (info.offset_data, info.size)
        _check_end_marker(path, infos, file_size)

    def size(self, name: str) -> int:
        return self.members[name][1]

    def chunks(self, name: str) -> Iterator[bytes]:
        offset, remaining = self.members[name]
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            yield from _read_exact(fh, remaining, name)


def _check_end_marker(path: Path, infos, file_size: int) -> None:
    """A complete tar ends with two zero blocks after the last member; a cut download does not."""
    end = 0
    if infos:
        last = infos[-1]
        end = last.offset_data + (-(-last.size // 512) * 512 if last.isreg() else 0)
    with open(path, "rb") as fh:
        fh.seek(end)
        tail = fh.read(1024)
    if len(tail) < 1024 or tail.count(0) != 1024:
        raise BundleError(f"{path} is truncated: the tar end-of-archive marker is missing",
                          hint=_REDOWNLOAD)


class FolderSource:
    """Members of an unpacked bundle folder (regular files only, no symlinks anywhere)."""

    def __init__(self, path: Path, max_member_size: int):
        self.path = path
        self.members: dict[str, int] = {}
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            for entry in sorted(dirnames + filenames):
                full = os.path.join(dirpath, entry)
                rel = Path(full).relative_to(path).as_posix()
                mode = os.lstat(full).st_mode
                if stat.S_ISDIR(mode):
                    continue
                check_relpath(rel)
                if not stat.S_ISREG(mode):
                    raise BundleError(f"bundle member {rel} is a link or special file; bundles may "
                                      "only hold regular files", hint=_REDOWNLOAD)
                size = os.lstat(full).st_size
                _check_size(rel, size, max_member_size)
                self.members[rel] = size

    def size(self, name: str) -> int:
        return self.members[name]

    def chunks(self, name: str) -> Iterator[bytes]:
        with open(self.path / name, "rb") as fh:
            yield from _read_exact(fh, self.members[name], name)


def _read_exact(fh: BinaryIO, remaining: int, name: str) -> Iterator[bytes]:
    while remaining > 0:
        block = fh.read(min(CHUNK, remaining))
        if not block:
            raise BundleError(f"bundle member {name} is truncated", hint=_REDOWNLOAD)
        remaining -= len(block)
        yield block
