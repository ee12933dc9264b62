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
from .manifest import MANIFEST_NAME, check_relpath

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
    """Members of an uncompressed tar file, indexed as ``name -> (data offset, size)``.

    Headers are read one at a time and each member is checked before ``tarfile`` seeks past it, so a forged
    size (a base-256 number of 10**15, say) is reported with the member's name; reads are capped at the end
    of the file, so no header can make the reader allocate more than the file holds."""

    def __init__(self, path: Path, max_member_size: int):
        self.path = path
        self.members: dict[str, tuple[int, int]] = {}
        file_size = path.stat().st_size
        infos, last = [], None
        try:
            with open(path, "rb") as fh, tarfile.open(fileobj=_Capped(fh, file_size), mode="r:") as tar:
                while (info := tar.next()) is not None:
                    last = self._index(info, file_size, max_member_size) or last
                    infos.append(info)
        except (tarfile.TarError, EOFError, OSError, ValueError, OverflowError, MemoryError) as exc:
            where = f"after member {last}" if last else "in its first header"
            raise BundleError(f"{path} is not a readable bundle (uncompressed tar): corrupt tar data {where}: "
                              f"{type(exc).__name__}: {str(exc)[:200]}", hint=_REDOWNLOAD) from None
        _check_end_marker(path, infos, file_size)

    def _index(self, info: tarfile.TarInfo, file_size: int, cap: int) -> str | None:
        name = info.name[2:] if info.name.startswith("./") else info.name
        if info.isdir() and name.rstrip("/") in ("", "."):
            return None
        check_relpath(name.rstrip("/") if info.isdir() else name)
        if info.isdir():
            return None
        if not info.isreg():
            raise BundleError(f"bundle member {name} is a link or special file; bundles may only "
                              "hold regular files", hint=_REDOWNLOAD)
        if info.size < 0:
            raise BundleError(f"{self.path} is corrupt: member {name} has a negative size ({info.size})",
                              hint=_REDOWNLOAD)
        if info.offset_data + info.size > file_size:
            raise BundleError(f"{self.path} is truncated or corrupt: member {name} claims {info.size} bytes, "
                              f"past the end of the {file_size}-byte file", hint=_REDOWNLOAD)
        _check_size(name, info.size, cap)
        if name in self.members:
            raise BundleError(f"bundle member {name} appears twice", hint=_REDOWNLOAD)
        self.members[name] = (info.offset_data, info.size)
        return name

    def size(self, name: str) -> int:
        return self.members[name][1]

    def chunks(self, name: str) -> Iterator[bytes]:
        offset, remaining = self.members[name]
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            yield from _read_exact(fh, remaining, name)


class _Capped:
    """A read-only file for ``tarfile`` whose reads and seeks stop at the end of the file."""

    def __init__(self, fh: BinaryIO, size: int):
        self._fh, self._size = fh, size

    def read(self, n: int = -1) -> bytes:
        left = max(0, self._size - self._fh.tell())
        return self._fh.read(left if n is None or n < 0 else min(n, left))

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            pos = min(max(pos, 0), self._size)
        return self._fh.seek(pos, whence)

    def tell(self) -> int:
        return self._fh.tell()


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
    """Members of an unpacked bundle folder (regular files with one link only, no symlinks anywhere)."""

    def __init__(self, path: Path, max_member_size: int):
        self.path = path
        self.members: dict[str, int] = {}
        try:
            manifest = os.lstat(path / MANIFEST_NAME)
        except OSError:
            manifest = None
        if manifest is None or not stat.S_ISREG(manifest.st_mode):
            raise BundleError(f"{path} has no {MANIFEST_NAME}: not a bundle folder",
                              hint="pass an .edgepack file or a folder written by unpack_bundle")
        try:
            self._walk(path, max_member_size)
        except OSError as exc:
            raise BundleError(f"cannot read bundle folder {path}: {exc}", hint="check its permissions") from None

    def _walk(self, path: Path, max_member_size: int) -> None:
        def fail(exc):                     # os.walk would skip an unreadable folder silently
            raise exc
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False, onerror=fail):
            for entry in sorted(dirnames + filenames):
                full = os.path.join(dirpath, entry)
                rel = Path(full).relative_to(path).as_posix()
                st = os.lstat(full)
                if stat.S_ISDIR(st.st_mode):
                    continue
                check_relpath(rel)
                if not stat.S_ISREG(st.st_mode):
                    raise BundleError(f"bundle member {rel} is a link or special file; bundles may "
                                      "only hold regular files", hint=_REDOWNLOAD)
                if st.st_nlink > 1:
                    raise BundleError(f"bundle member {rel} is a hard link ({st.st_nlink} names for one "
                                      "file); bundles may only hold files of their own",
                                      hint="copy the file, or unpack the bundle again")
                _check_size(rel, st.st_size, max_member_size)
                self.members[rel] = st.st_size

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
