"""A bundle being downloaded: the staging file, written at chunk offsets, and its persisted chunk map.

The map (``<staging>.part.json``: sha256, size, chunk_size and a base64 bitmap of the chunks held) is written
atomically (tmp + fsync + rename) only after the data it describes was fsynced, so it never claims a chunk
that a power cut could have lost; at worst a few chunks received since the last checkpoint are fetched again.
The file is preallocated to its full size when the filesystem allows (``posix_fallocate``): a disk too small
fails before the first chunk, and a disk that fills up later cannot take the blocks away from the download.
"""
from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

from .chunks import Offer

READ = 1 << 20
log = logging.getLogger("edgepack_runtime.ota.staged")


def install_need(size: int) -> int:
    """Free bytes the Updater wants beside a staged file of ``size`` bytes to copy it into a slot."""
    try:
        from .verify import HEADROOM, MARGIN
    except ImportError:
        MARGIN, HEADROOM = 1.1, 1 << 20
    return int(size * MARGIN) + HEADROOM


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part.json")


class StagedFile:
    """Open with ``StagedFile.open(offer, path)``: resumes when the chunk map beside ``path`` fits ``offer``."""

    def __init__(self, offer: Offer, path: Path, fd: int, have: bytearray):
        self.offer, self.path, self.fd = offer, path, fd
        self.have = have
        self.count = sum(bin(b).count("1") for b in have)
        self._asked = bytearray(len(have))
        self._cursor = 0
        self.dirty, self.saved_at = False, time.monotonic()

    @classmethod
    def open(cls, offer: Offer, path: Path, *, preallocate: bool = True) -> "StagedFile":
        """Resume the download of ``offer`` at ``path`` (or one of the same bytes staged beside it under another
        update id, moved here); otherwise start afresh. Staged downloads of other bundles beside it are removed:
        one download at a time."""
        path.parent.mkdir(parents=True, exist_ok=True)
        cls._adopt(offer, path)
        have = cls._load(offer, path)
        if have is not None:
            return cls(offer, path, os.open(path, os.O_RDWR), have)
        cls.remove(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _reserve(fd, offer.size, preallocate)
            staged = cls(offer, path, fd, bytearray(math.ceil(offer.chunks / 8)))
            staged.checkpoint()
        except BaseException:
            os.close(fd)
            cls.remove(path)
            raise
        return staged

    @staticmethod
    def _load(offer: Offer, path: Path) -> bytearray | None:
        """The chunk map of an earlier download of the same bytes in the same chunking, else None."""
        try:
            doc = json.loads(part_path(path).read_text())
            same = (doc.get("sha256"), doc.get("size"), doc.get("chunk_size")) == (
                offer.sha256, offer.size, offer.chunk_size)
            have = bytearray(base64.b64decode(doc["have"], validate=True))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        if not same or len(have) != math.ceil(offer.chunks / 8) or path.stat().st_size != offer.size:
            return None
        return have

    @classmethod
    def _adopt(cls, offer: Offer, path: Path) -> None:
        for part in path.parent.glob("*.part.json"):
            other = part.with_name(part.name[: -len(".part.json")])
            if other == path:
                continue
            if cls._load(offer, other) is not None and not part_path(path).exists():
                os.replace(other, path)
                os.replace(part, part_path(path))
            else:
                cls.remove(other)

    @classmethod
    def held(cls, offer: Offer, folder: Path) -> int:
        """Bytes of ``offer``'s bundle already staged in ``folder`` (preallocated in full: the whole size)."""
        for part in folder.glob("*.part.json") if folder.is_dir() else ():
            if cls._load(offer, part.with_name(part.name[: -len(".part.json")])) is not None:
                return offer.size
        return 0

    @staticmethod
    def remove(path: Path) -> None:
        for p in (path, part_path(path), part_path(path).with_suffix(".tmp")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    # the map ----------------------------------------------------------------------------
    def has(self, index: int) -> bool:
        return bool(self.have[index >> 3] & (1 << (index & 7)))

    def asked(self, index: int) -> bool:
        """Whether ``index`` was asked for before (by this process): asking again is a re-request."""
        return bool(self._asked[index >> 3] & (1 << (index & 7)))

    def next_missing(self) -> int | None:
        """The lowest chunk never asked for and not held (each index is handed out once)."""
        while self._cursor < self.offer.chunks:
            i = self._cursor
            self._cursor += 1
            if not self.has(i):
                return i
        return None

    def ask(self, index: int) -> bool:
        """Record that ``index`` is asked for now; True when it had been asked for before (a re-request)."""
        before = self.asked(index)
        self._asked[index >> 3] |= 1 << (index & 7)
        return before

    @property
    def complete(self) -> bool:
        return self.count == self.offer.chunks

    # data -------------------------------------------------------------------------------
    def write(self, index: int, data) -> None:
        """Write chunk ``index`` at its offset and mark it held (OSError on a full disk)."""
        view, offset = memoryview(data), index * self.offer.chunk_size
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n
        self.have[index >> 3] |= 1 << (index & 7)
        self.count += 1
        self.dirty = True

    def checkpoint(self) -> None:
        """fsync the data, then save the chunk map atomically. A map that cannot be written (disk full) keeps the
        previous one: it only costs chunks fetched again after a restart."""
        os.fsync(self.fd)
        part = part_path(self.path)
        tmp = part.with_suffix(".tmp")
        doc = {"v": 1, "sha256": self.offer.sha256, "size": self.offer.size, "chunk_size": self.offer.chunk_size,
               "have": base64.b64encode(bytes(self.have)).decode()}
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, json.dumps(doc).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, part)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("cannot save the chunk map %s: %s", part, exc)
            return
        self.dirty, self.saved_at = False, time.monotonic()

    def bad_chunks(self) -> list[int] | None:
        """[] when the whole file matches the offer's sha256; else the chunks that do not match their digest,
        unmarked so that they are fetched again; None when every chunk matches its digest and the file still
        does not match the sha256 (the offer contradicts itself)."""
        whole = hashlib.sha256()
        for block in self._blocks(0, self.offer.size):
            whole.update(block)
        if whole.hexdigest() == self.offer.sha256:
            return []
        bad = [i for i in range(self.offer.chunks)
               if hashlib.sha256(b"".join(self._blocks(i * self.offer.chunk_size, self.offer.length(i)))).digest()
               != self.offer.digest(i)]
        if not bad:
            return None
        for i in bad:
            self.have[i >> 3] &= ~(1 << (i & 7)) & 0xFF
        self.count -= len(bad)
        self.checkpoint()
        return bad

    def _blocks(self, offset: int, length: int):
        end = offset + length
        while offset < end:
            block = os.pread(self.fd, min(READ, end - offset), offset)
            if not block:
                raise OSError(f"staging file {self.path} is shorter than {end} bytes")
            offset += len(block)
            yield block

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Close and delete the staging file and its map (whatever the Updater left of them)."""
        self.close()
        self.remove(self.path)


def _reserve(fd: int, size: int, preallocate: bool) -> None:
    if preallocate and hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):   # not supported by this filesystem
                raise
    os.ftruncate(fd, size)


class Record:
    """The last outcomes by update id (``flash.json`` beside the staging files), so a retained offer seen again
    after a restart is answered, not installed twice."""

    def __init__(self, path: Path | None, keep: int = 32):
        self.path, self.keep = path, keep
        self._data: dict[str, dict] = {}
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                self._data = {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._data = {}

    def get(self, update_id: str) -> dict | None:
        return self._data.get(update_id)

    def put(self, update_id: str, outcome: dict) -> None:
        self._data.pop(update_id, None)
        self._data[update_id] = outcome
        while len(self._data) > self.keep:
            self._data.pop(next(iter(self._data)))
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            try:
                tmp.write_text(json.dumps(self._data))
                os.replace(tmp, self.path)
            except OSError as exc:                        # a full disk must not break the receiver
                log.warning("cannot save %s: %s", self.path, exc)
