"""Property tests of the flash wire parsers (untrusted input from the broker): offers, requests, chunk headers.
Any bytes give a checked value or a BadMessage, never another exception; what the writers produce parses back
to the same values."""
from __future__ import annotations

import base64
import hashlib
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepack_runtime.ota.chunks import (HEADER, MAGIC, MAX_BUNDLE_BYTES, MAX_CHUNK, MAX_CHUNKS, MAX_REQUEST_CHUNKS,
                                         MIN_CHUNK, BadMessage, make_offer, pack_chunk, parse_chunk, parse_offer,
                                         parse_request, request_bytes, to_ranges)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSONY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
hexid = st.text("0123456789abcdef", min_size=32, max_size=32)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=6)


def _refused_or(fn, raw):
    try:
        return fn(raw)
    except BadMessage as exc:
        assert str(exc) and exc.fields is not None
        return None


@FAST
@given(st.binary(max_size=600))
def test_any_bytes_are_an_offer_or_a_bad_message(raw):
    _refused_or(parse_offer, raw)


@JSONY
@given(st.dictionaries(st.sampled_from(["v", "update_id", "sha256", "size", "chunk_size", "chunks", "hashes",
                                        "model", "profiles", "budget_ms", "key_id", "epoch", "ts", "x"]),
                       json_value, max_size=14))
def test_any_json_object_is_an_offer_or_a_bad_message(doc):
    offer = _refused_or(parse_offer, json.dumps(doc).encode())
    if offer is not None:                                       # accepted: every invariant holds
        assert 1 <= offer.size <= MAX_BUNDLE_BYTES and MIN_CHUNK <= offer.chunk_size <= MAX_CHUNK
        assert offer.chunks == math.ceil(offer.size / offer.chunk_size) <= MAX_CHUNKS


@st.composite
def offers(draw):
    chunk = draw(st.integers(MIN_CHUNK, MAX_CHUNK))
    size = draw(st.integers(1, min(MAX_BUNDLE_BYTES, chunk * 200)))
    n = math.ceil(size / chunk)
    hashes = draw(st.binary(min_size=32 * n, max_size=32 * n))
    return dict(update_id=draw(hexid), sha256=hashlib.sha256(draw(st.binary(max_size=8))).hexdigest(), size=size,
                chunk_size=chunk, hashes=hashes, model={"name": draw(st.text(max_size=10)), "version": "1"},
                profiles=tuple(draw(st.lists(st.text(max_size=10), max_size=3))),
                budget_ms=draw(st.none() | st.floats(0.5, 1e5)), epoch=draw(st.text(max_size=20)))


@FAST
@given(offers())
def test_an_offer_round_trips_and_a_declared_size_over_the_limit_is_refused(fields):
    offer = make_offer(**fields)
    back = parse_offer(offer.to_bytes())
    assert back == offer and back.hashes == fields["hashes"]
    assert all(back.length(i) > 0 for i in range(back.chunks))
    assert sum(back.length(i) for i in range(back.chunks)) == back.size
    doc = json.loads(offer.to_bytes())
    doc["size"] = MAX_BUNDLE_BYTES + 1
    doc["chunks"] = math.ceil(doc["size"] / doc["chunk_size"])
    doc["hashes"] = base64.b64encode(bytes(32 * min(doc["chunks"], 3))).decode()
    try:
        parse_offer(json.dumps(doc).encode())
        raise AssertionError("an oversized declaration was accepted")
    except BadMessage as exc:
        assert "size" in exc.fields or "chunk_size" in exc.fields or "chunks" in exc.fields


@FAST
@given(st.binary(max_size=300), st.integers(1, 5000))
def test_any_bytes_are_a_request_or_a_bad_message(raw, chunks):
    _refused_or(lambda r: parse_request(r, chunks), raw)


@JSONY
@given(st.dictionaries(st.sampled_from(["v", "update_id", "epoch", "ranges"]), json_value, max_size=4),
       st.integers(1, 5000))
def test_any_json_is_a_request_or_a_bad_message(doc, chunks):
    got = _refused_or(lambda r: parse_request(r, chunks), json.dumps(doc).encode())
    if got is not None:
        assert all(0 <= i < chunks for i in got[2]) and len(got[2]) <= MAX_REQUEST_CHUNKS


@FAST
@given(hexid, st.text(max_size=30), st.sets(st.integers(0, 4999), min_size=1, max_size=400))
def test_a_request_round_trips(uid, epoch, indices):
    assert len(to_ranges(indices)) <= len(indices)
    raw = request_bytes(uid, epoch, indices)
    if len(to_ranges(indices)) > 256:
        return
    assert parse_request(raw, 5000) == (uid, epoch, sorted(indices))


def test_requests_out_of_bounds_or_too_large_are_refused():
    uid = "a" * 32
    for ranges, words in [([[0, 10]], "stop <= 5"), ([[3, 3]], "start < stop"), ([[-1, 2]], "0 <= start"),
                          ([[0, 1.5]], "[start, stop)"), ([[i, i + 1] for i in range(0, 600, 2)], "1 to 256")]:
        raw = json.dumps({"v": 1, "update_id": uid, "epoch": "", "ranges": ranges}).encode()
        try:
            parse_request(raw, 5)
            raise AssertionError(ranges)
        except BadMessage as exc:
            assert words in str(exc), (words, str(exc))
    big = json.dumps({"v": 1, "update_id": uid, "ranges": [[0, MAX_REQUEST_CHUNKS + 1]]}).encode()
    try:
        parse_request(big, 10 ** 6)
        raise AssertionError("too many chunks accepted")
    except BadMessage as exc:
        assert "more than" in str(exc)


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_are_a_chunk_or_a_bad_message(raw):
    got = _refused_or(parse_chunk, raw)
    if got is not None:
        uid, index, digest, data = got
        assert len(uid) == 32 and len(digest) == 32 and len(data) == len(raw) - HEADER.size


@FAST
@given(hexid, st.integers(0, 2 ** 32 - 1), st.binary(max_size=3000), st.integers(0, 80))
def test_a_chunk_round_trips_and_any_damage_to_its_header_is_caught_or_changes_a_field(uid, index, data, cut):
    raw = pack_chunk(uid, index, data)
    got_uid, got_index, digest, got = parse_chunk(raw)
    assert (got_uid, got_index, digest, bytes(got)) == (uid, index, hashlib.sha256(data).digest(), data)
    truncated = raw[:len(raw) - 1 - cut] if len(raw) > cut + 1 else b""
    if len(truncated) != len(raw):
        try:
            parse_chunk(truncated)
            raise AssertionError("a truncated chunk parsed")
        except BadMessage as exc:
            assert exc.fields[0] in ("header", "length")
    assert raw.startswith(MAGIC)
