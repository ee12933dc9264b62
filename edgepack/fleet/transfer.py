"""The host end of the flash transfer: a bundle file served in chunks to the devices that ask for them.

``BundleFile.open(path, chunk_size)`` reads the file once to hash it (whole-file sha256 and one sha256 per
chunk) and later reads single chunks with ``pread``: memory stays bounded by the chunks in flight, whatever
the bundle's size (up to 2 GiB). ``Sender`` keeps, per device, the indices asked for and not yet sent
(deduplicated, at most ``MAX_REQUEST_CHUNKS`` x 4 queued) and hands them out round-robin while the MQTT link
has fewer than ``max_inflight`` chunks unacknowledged. Requests for another update, or from an earlier
sender epoch (before a reconnect of the host), are counted and ignored: the device asks again after it sees
the offer of the current epoch. The wire format is ``edgepack_runtime.ota.chunks``.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from edgepack_runtime.ota.chunks import (DEFAULT_CHUNK, MAX_BUNDLE_BYTES, MAX_CHUNK, MAX_CHUNKS, MAX_REQUEST_CHUNKS,
                                         MIN_CHUNK, BadMessage, Offer, pack_chunk, parse_request)

from ..errors import BundleError

READ = 1 << 20


def fit_chunk_size(size: int, wanted: int = DEFAULT_CHUNK, max_packet: int | None = None) -> int:
    """``wanted`` bounded by the protocol, by the broker's maximum packet (minus room for topic and header)
    and raised so that the bundle fits in ``MAX_CHUNKS`` chunks; a multiple of 4 KiB."""
    size_bound = max(MIN_CHUNK, math.ceil(size / MAX_CHUNKS))
    chunk = max(min(wanted, MAX_CHUNK), size_bound, MIN_CHUNK)
    if max_packet:
        chunk = min(chunk, max_packet - 1024)
    chunk -= chunk % 4096
    if chunk < max(MIN_CHUNK, size_bound):
        raise BundleError(f"the broker's maximum packet size ({max_packet} bytes) cannot carry chunks of this "
                          f"{size}-byte bundle (needs at least {max(MIN_CHUNK, size_bound) + 1024} bytes)",
                          hint="raise max_packet_size on the broker")
    return chunk


class BundleFile:
    """A bundle file opened for serving: size, sha256, chunk digests; ``chunk(i)`` reads one chunk."""

    def __init__(self, path: Path, fd: int, size: int, sha256: str, chunk_size: int, hashes: bytes):
        self.path, self.size, self.sha256 = path, size, sha256
        self.chunk_size, self.hashes = chunk_size, hashes
        self._fd, self._stamp = fd, _stamp(fd)

    @classmethod
    def open(cls, path: str | Path, chunk_size: int = DEFAULT_CHUNK) -> "BundleFile":
        path = Path(path)
        if not path.is_file():
            raise BundleError(f"{path} is not a bundle file", hint="flash sends the .edgepack file `edgepack build` "
                                                                   "writes (a folder bundle cannot be flashed)")
        fd = os.open(path, os.O_RDONLY)
        try:
            stamp, size = _stamp(fd), os.fstat(fd).st_size
            if size > MAX_BUNDLE_BYTES or size == 0:
                raise BundleError(f"{path} is {size} bytes; a device accepts bundles of 1 byte to 2 GiB")
            whole, hashes = hashlib.sha256(), bytearray()
            for offset in range(0, size, chunk_size):
                block = os.pread(fd, chunk_size, offset)
                whole.update(block)
                hashes += hashlib.sha256(block).digest()
            if _stamp(fd) != stamp:
                raise BundleError(f"{path} changed while it was being hashed", hint="flash a file nobody writes to")
            return cls(path, fd, size, whole.hexdigest(), chunk_size, bytes(hashes))
        except BaseException:
            os.close(fd)
            raise

    @property
    def chunks(self) -> int:
        return len(self.hashes) // 32

    def chunk(self, index: int) -> bytes:
        length = min(self.chunk_size, self.size - index * self.chunk_size)
        data = os.pread(self._fd, length, index * self.chunk_size)
        if len(data) != length or _stamp(self._fd) != self._stamp:       # the digests sent would be stale
            raise BundleError(f"{self.path} changed while it was being flashed", hint="flash a file nobody writes to")
        return data

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _stamp(fd: int) -> tuple:
    st = os.fstat(fd)
    return st.st_size, st.st_mtime_ns, st.st_ino


@dataclass
class Serving:
    """One device being served one offer."""
    device: str
    offer: Offer
    epoch: str = ""
    queue: deque = field(default_factory=deque)
    queued: set = field(default_factory=set)
    sends: bytearray = field(default_factory=bytearray)     # per chunk index: how many times sent (capped 255)
    counters: dict = field(default_factory=lambda: dict.fromkeys(
        ("requests", "sent", "resent", "bytes_sent", "bad_requests", "stale_requests", "over_limit"), 0))

    def __post_init__(self):
        self.sends = bytearray(self.offer.chunks)


class Sender:
    """Serves chunk requests for many devices from one ``BundleFile``; thread-safe."""

    def __init__(self, source: BundleFile, *, max_inflight: int = 32):
        self.source, self.max_inflight = source, max_inflight
        self.devices: dict[str, Serving] = {}
        self.last_bad: str | None = None
        self._turn: deque[str] = deque()
        self._lock = threading.Lock()

    def serve(self, device: str, offer: Offer, epoch: str) -> None:
        with self._lock:
            if device not in self.devices:
                self.devices[device] = Serving(device, offer)
                self._turn.append(device)
            s = self.devices[device]
            s.offer, s.epoch = offer, epoch
            s.queue.clear()
            s.queued.clear()

    def stop_serving(self, device: str) -> None:
        with self._lock:
            s = self.devices.get(device)
            if s is not None:
                s.queue.clear()
                s.queued.clear()

    def reset(self) -> None:
        """The link reconnected: what was queued is forgotten (devices ask again under the new epoch)."""
        with self._lock:
            for s in self.devices.values():
                s.queue.clear()
                s.queued.clear()

    def on_request(self, device: str, raw: bytes) -> None:
        with self._lock:
            s = self.devices.get(device)
            if s is None:
                return
            try:
                uid, epoch, wanted = parse_request(raw, s.offer.chunks)
            except BadMessage as exc:
                s.counters["bad_requests"] += 1
                self.last_bad = f"{device}: {exc}"
                return
            if uid != s.offer.update_id or epoch != s.epoch:
                s.counters["stale_requests"] += 1
                return
            s.counters["requests"] += 1
            for i in wanted:
                if i in s.queued:
                    continue
                if len(s.queue) >= 4 * MAX_REQUEST_CHUNKS:
                    s.counters["over_limit"] += 1
                    break
                s.queue.append(i)
                s.queued.add(i)

    def next_chunk(self) -> tuple[str, str, int] | None:
        """(device, update_id, index) of the next chunk to send, round-robin over the devices, or None."""
        with self._lock:
            for _ in range(len(self._turn)):
                device = self._turn[0]
                self._turn.rotate(-1)
                s = self.devices[device]
                if s.queue:
                    index = s.queue.popleft()
                    s.queued.discard(index)
                    return device, s.offer.update_id, index
        return None

    def payload(self, update_id: str, index: int) -> bytes:
        """The chunk message (header + data read from the file)."""
        return pack_chunk(update_id, index, self.source.chunk(index), self.source.hashes[32 * index:32 * index + 32])

    def sent(self, device: str, index: int, nbytes: int) -> None:
        with self._lock:
            s = self.devices[device]
            s.counters["sent"] += 1
            s.counters["bytes_sent"] += nbytes
            if s.sends[index]:
                s.counters["resent"] += 1
            s.sends[index] = min(255, s.sends[index] + 1)

    def resent(self, device: str, limit: int = 100) -> list[int]:
        """The chunk indices sent more than once to ``device`` (the first ``limit``)."""
        with self._lock:
            s = self.devices.get(device)
            return [i for i, n in enumerate(s.sends) if n > 1][:limit] if s is not None else []

    def counters(self, device: str) -> dict:
        with self._lock:
            s = self.devices.get(device)
            return dict(s.counters, queued=len(s.queue)) if s is not None else {}
