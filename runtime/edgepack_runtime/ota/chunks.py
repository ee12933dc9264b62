"""The flash wire format (protocol 1), shared by the device receiver and the host sender.

Topics under ``edgepack/v1/<fleet>/<device>/``:

- ``ota/offer`` (host -> device, retained, QoS 1): JSON ``Offer``: ``v`` 1, ``update_id`` (32 hex, one per
  flash run), ``sha256`` and ``size`` of the bundle file, ``chunk_size``, ``chunks`` (their count),
  ``hashes`` (base64 of the chunks' sha256 digests, 32 bytes each, in order), ``model`` {name, version},
  ``profiles`` (device profiles the bundle suits; empty: any), ``budget_ms``, ``key_id`` (signer, or null),
  ``epoch`` (new on every connection of the sender, which then forgets what it owed), ``ts``; optional
  ``mode`` (``"install"``, the default, or ``"shadow"``: run the bundle beside the serving one, never switch to
  it; see ``edgepack_runtime.shadow``) and ``shadow_share`` (null or the share of requests, 0..1). An empty
  retained payload withdraws the offer. Retained, so a device that is offline finds it when it comes back.
- ``ota/request`` (device -> host, QoS 1, never stored): JSON ``{"v": 1, "update_id", "epoch", "ranges":
  [[start, stop), ...]}``: chunk indices the device wants now (at most ``MAX_REQUEST_CHUNKS``), under the
  offer's epoch; the sender ignores requests of an older epoch (the device asks again when it sees the new
  offer), so nothing is sent twice because a request crossed a reconnect.
- ``ota/data/<update_id>`` (host -> device, QoS 1): binary: a 60-byte header (``HEADER``: magic ``EPC\\x01``,
  the update id's 16 bytes, chunk index u32, data length u32, sha256 of the data, big-endian) then the data.
- ``ota/status`` (device -> host, retained): JSON states and progress (see ``transfer.py``).

Every parser here takes untrusted bytes and either returns a checked value or raises ``BadMessage`` naming
what is wrong; sizes are bounded before anything is decoded.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import struct
from dataclasses import asdict, dataclass, field

from ..payload import BadCommand, parse_payload

PROTOCOL = 1
MAX_BUNDLE_BYTES = 2 * 1024 ** 3                 # the largest bundle a device accepts
MIN_CHUNK, MAX_CHUNK = 4 * 1024, 16 * 1024 ** 2   # chunk size bounds (bytes)
DEFAULT_CHUNK = 256 * 1024
MAX_CHUNKS = 32768                               # hash list <= 1 MiB (1.4 MB in base64)
MAX_OFFER_BYTES = 2 * 1024 ** 2
MAX_REQUEST_BYTES = 16 * 1024
MAX_REQUEST_CHUNKS = 4096
MAX_RANGES = 256
MAGIC = b"EPC\x01"
HEADER = struct.Struct(">4s16sII32s")            # magic, update id, index, length, sha256
UPDATE_ID = re.compile(r"[0-9a-f]{32}")
SHA256 = re.compile(r"[0-9a-f]{64}")


class BadMessage(BadCommand):
    """An offer, request or chunk that does not follow the protocol; the message says what is wrong."""


@dataclass(frozen=True)
class Offer:
    """What the host offers one device: the bundle file, its chunking and the chunks' digests."""
    update_id: str
    sha256: str
    size: int
    chunk_size: int
    hashes: bytes = field(repr=False)
    model: dict = field(default_factory=dict)
    profiles: tuple = ()
    budget_ms: float | None = None
    key_id: str | None = None
    epoch: str = ""
    ts: float = 0.0
    mode: str = "install"                        # "shadow": installed as a shadow (edgepack_runtime.shadow)
    shadow_share: float | None = None

    @property
    def chunks(self) -> int:
        return len(self.hashes) // 32

    @property
    def key(self) -> str:
        """The content key of the staging file: the same bundle resumes across flash runs."""
        return self.sha256[:32]

    def digest(self, index: int) -> bytes:
        return self.hashes[32 * index:32 * index + 32]

    def length(self, index: int) -> int:
        """Byte length of chunk ``index`` (the last one may be short)."""
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def to_bytes(self) -> bytes:
        doc = asdict(self)
        doc.update(v=PROTOCOL, chunks=self.chunks, hashes=base64.b64encode(self.hashes).decode(),
                   profiles=list(self.profiles))
        return json.dumps(doc, sort_keys=True).encode()


def _need(cond: bool, message: str, fld: str) -> None:
    if not cond:
        raise BadMessage(message, [fld])


def _int(doc: dict, name: str, lo: int, hi: int, what: str) -> int:
    value = doc.get(name)
    _need(isinstance(value, int) and not isinstance(value, bool), f"offer field {name} must be an integer", name)
    _need(lo <= value <= hi, f"offer {what} {value} is outside [{lo}, {hi}]", name)
    return value


def _document(raw: bytes, kind: str, max_bytes: int, max_depth: int) -> dict:
    try:
        return parse_payload(raw, max_bytes=max_bytes, max_depth=max_depth)
    except BadMessage:
        raise
    except BadCommand as exc:                       # size, UTF-8, depth, JSON, not an object
        raise BadMessage(f"{kind}: {exc}", exc.fields or ["payload"]) from None


def _version(doc: dict, kind: str) -> None:
    v = doc.get("v")
    _need(v == PROTOCOL, f"{kind} speaks flash protocol {v!r}; this device speaks {PROTOCOL} "
                         "(update the agent or the host)", "v")


def parse_offer(raw: bytes, *, max_bundle_bytes: int = MAX_BUNDLE_BYTES) -> Offer:
    """The ``Offer`` in ``raw`` (bounded JSON, every field checked), else ``BadMessage``."""
    doc = _document(raw, "offer", MAX_OFFER_BYTES, 4)
    _version(doc, "offer")
    uid = doc.get("update_id")
    _need(isinstance(uid, str) and UPDATE_ID.fullmatch(uid) is not None,
          "offer update_id must be 32 lowercase hex digits", "update_id")
    sha = doc.get("sha256")
    _need(isinstance(sha, str) and SHA256.fullmatch(sha) is not None,
          "offer sha256 must be 64 lowercase hex digits", "sha256")
    size = doc.get("size")
    _need(isinstance(size, int) and not isinstance(size, bool) and size >= 1,
          "offer size must be a positive integer", "size")
    _need(size <= max_bundle_bytes, f"offer declares {size} bytes, over this device's limit of "
                                    f"{max_bundle_bytes} bytes (bundles are at most 2 GiB)", "size")
    chunk = _int(doc, "chunk_size", MIN_CHUNK, MAX_CHUNK, "chunk_size")
    count = _int(doc, "chunks", 1, MAX_CHUNKS, "chunk count")
    _need(count == math.ceil(size / chunk), f"offer says {count} chunks, but {size} bytes in chunks of {chunk} "
                                            f"make {math.ceil(size / chunk)}", "chunks")
    text = doc.get("hashes")
    _need(isinstance(text, str) and len(text) == 4 * math.ceil(32 * count / 3),
          f"offer hashes must be base64 of {count} sha256 digests", "hashes")
    try:
        hashes = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadMessage("offer hashes are not valid base64", ["hashes"]) from None
    _need(len(hashes) == 32 * count, f"offer hashes hold {len(hashes)} bytes, not {32 * count}", "hashes")
    return Offer(uid, sha, size, chunk, hashes, model=_model(doc.get("model")), profiles=_profiles(doc),
                 budget_ms=_budget(doc.get("budget_ms")), key_id=_short_str(doc, "key_id"),
                 epoch=_short_str(doc, "epoch") or "", ts=_ts(doc.get("ts")), mode=_mode(doc.get("mode")),
                 shadow_share=_share(doc.get("shadow_share")))


MODES = ("install", "shadow")


def _mode(value) -> str:
    _need(value is None or value in MODES, f"offer mode must be one of {', '.join(MODES)}", "mode")
    return value or "install"


def _share(value) -> float | None:
    ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1)
    _need(ok, "offer shadow_share must be null or a number in [0, 1]", "shadow_share")
    return None if value is None else float(value)


def _model(value) -> dict:
    _need(value is None or isinstance(value, dict), "offer model must be an object", "model")
    return {k: str(v)[:200] for k, v in (value or {}).items() if k in ("name", "version")}


def _profiles(doc: dict) -> tuple:
    value = doc.get("profiles", [])
    _need(isinstance(value, list) and len(value) <= 64 and all(isinstance(p, str) and len(p) <= 100 for p in value),
          "offer profiles must be a list of at most 64 names", "profiles")
    return tuple(value)


def _budget(value) -> float | None:
    ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 3.6e6)
    _need(ok, "offer budget_ms must be null or a number of milliseconds in (0, 3600000]", "budget_ms")
    return None if value is None else float(value)


def _short_str(doc: dict, name: str) -> str | None:
    value = doc.get(name)
    _need(value is None or (isinstance(value, str) and len(value) <= 128),
          f"offer {name} must be null or a string of at most 128 characters", name)
    return value


def _ts(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def offer_id(raw: bytes) -> str | None:
    """The update id of an offer that is refused, when it can be read, so the host learns which one failed."""
    try:
        uid = json.loads(raw[:MAX_OFFER_BYTES]).get("update_id")
    except (ValueError, AttributeError, RecursionError, UnicodeDecodeError):
        return None
    return uid if isinstance(uid, str) and UPDATE_ID.fullmatch(uid) else None


def make_offer(update_id: str, sha256: str, size: int, chunk_size: int, hashes: bytes, **extra) -> Offer:
    """An ``Offer`` the host is about to publish, checked by the same parser a device runs."""
    offer = Offer(update_id, sha256, size, chunk_size, hashes, **extra)
    return parse_offer(offer.to_bytes())


# requests -------------------------------------------------------------------------------------
def to_ranges(indices) -> list[list[int]]:
    """Sorted chunk indices as half-open ``[start, stop)`` ranges."""
    ranges: list[list[int]] = []
    for i in sorted(indices):
        if ranges and ranges[-1][1] == i:
            ranges[-1][1] = i + 1
        elif not ranges or ranges[-1][1] < i:
            ranges.append([i, i + 1])
    return ranges


def request_bytes(update_id: str, epoch: str, indices) -> bytes:
    return json.dumps({"v": PROTOCOL, "update_id": update_id, "epoch": epoch, "ranges": to_ranges(indices)}).encode()


def parse_request(raw: bytes, chunks: int) -> tuple[str, str, list[int]]:
    """``(update_id, epoch, sorted distinct indices)`` of a request for an update of ``chunks`` chunks, else
    BadMessage."""
    doc = _document(raw, "request", MAX_REQUEST_BYTES, 3)
    _version(doc, "request")
    uid, epoch, ranges = doc.get("update_id"), doc.get("epoch", ""), doc.get("ranges")
    _need(isinstance(uid, str) and UPDATE_ID.fullmatch(uid) is not None,
          "request update_id must be 32 lowercase hex digits", "update_id")
    _need(isinstance(epoch, str) and len(epoch) <= 128, "request epoch must be a string of at most 128 characters",
          "epoch")
    _need(isinstance(ranges, list) and 1 <= len(ranges) <= MAX_RANGES,
          f"request ranges must be a list of 1 to {MAX_RANGES} [start, stop] pairs", "ranges")
    wanted: set[int] = set()
    for r in ranges:
        ok = (isinstance(r, list) and len(r) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in r)
              and 0 <= r[0] < r[1] <= chunks)
        _need(ok, f"request range {str(r)[:60]} is not [start, stop) with 0 <= start < stop <= {chunks}", "ranges")
        _need(len(wanted) + (r[1] - r[0]) <= MAX_REQUEST_CHUNKS,
              f"request asks for more than {MAX_REQUEST_CHUNKS} chunks at once", "ranges")
        wanted.update(range(r[0], r[1]))
    return uid, epoch, sorted(wanted)


# chunks ---------------------------------------------------------------------------------------
def pack_chunk(update_id: str, index: int, data: bytes, digest: bytes | None = None) -> bytes:
    """Header + data of chunk ``index`` (``digest``: its sha256 when already known)."""
    digest = digest or hashlib.sha256(data).digest()
    return HEADER.pack(MAGIC, bytes.fromhex(update_id), index, len(data), digest) + data


def parse_chunk(raw: bytes) -> tuple[str, int, bytes, memoryview]:
    """``(update_id, index, sha256 digest, data)`` of a chunk message (structure only), else BadMessage."""
    if len(raw) < HEADER.size:
        raise BadMessage(f"chunk of {len(raw)} bytes is shorter than its {HEADER.size}-byte header", ["header"])
    magic, uid, index, length, digest = HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise BadMessage(f"chunk does not start with the flash magic (got {magic!r})", ["magic"])
    if length != len(raw) - HEADER.size:
        raise BadMessage(f"chunk header says {length} data bytes, the message holds {len(raw) - HEADER.size}",
                         ["length"])
    return uid.hex(), index, digest, memoryview(raw)[HEADER.size:]
