"""The device receiver with the real Updater and the real host Sender, joined in-process (no broker): a
transfer installs the bundle; bad chunks are refused, counted, asked again and never written; bad offers and
offers the device cannot take are refused before anything is staged; a restart resumes from the chunk map."""
from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest

from edgepack_runtime.ota.chunks import HEADER, Offer, pack_chunk
from edgepack_runtime.ota.staged import part_path

from .bundles import make_bundle
from .harness import Loop

CHUNK = 4096


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    d = tmp_path_factory.mktemp("rx")
    return {"v1": make_bundle(d / "v1.edgepack", "1", 1.0),
            "v2": make_bundle(d / "v2.edgepack", "2", 2.0, pad=60_000),          # 16 chunks of 4 KiB
            "pi": make_bundle(d / "pi.edgepack", "pi", 3.0, devices=["raspberry-pi-5"])}


def _staged_zero(loop: Loop, offer: Offer, index: int) -> bool:
    """Whether chunk ``index`` of the staging file still holds no data (never written)."""
    path = loop.updater.staging_path(offer.update_id)
    with open(path, "rb") as fh:
        fh.seek(index * offer.chunk_size)
        return fh.read(offer.length(index)) == bytes(offer.length(index))


def test_a_transfer_installs_the_bundle_and_removes_the_staging_file(tmp_path, bundles):
    loop = Loop(tmp_path / "state", bundles["v1"], window=4)
    offer = loop.offer(bundles["v2"])
    loop.rx.on_offer("ota/offer", offer.to_bytes())
    assert loop.asked() == [0, 1, 2, 3]                       # the window, lowest first
    loop.deliver()
    final = loop.wait_final()
    assert final["state"] == "committed" and final["update_id"] == offer.update_id, final
    assert final["model"]["version"] == "2"
    c = loop.rx.counters
    assert (c["requested"], c["rerequested"], c["received"], c["duplicates"]) == (offer.chunks, 0, offer.chunks, 0)
    assert loop.sender.counters("dev")["sent"] == offer.chunks
    assert not list((tmp_path / "state" / "staging").glob("*")), "staging left behind"
    states = [r["state"] for r in loop.reports]
    assert states[0] == "downloading" and "downloaded" in states, states


def test_bad_chunks_are_refused_counted_asked_again_and_never_written(tmp_path, bundles):
    loop = Loop(tmp_path / "state", bundles["v1"], window=2)
    offer = loop.offer(bundles["v2"])
    loop.rx.on_offer("ota/offer", offer.to_bytes())
    data = loop.sender.source.chunk(1)
    good = pack_chunk(offer.update_id, 1, data)
    topic = f"ota/data/{offer.update_id}"
    cases = {
        "malformed": [b"", good[:10], b"XXXX" + good[4:], good + b"!",               # short, magic, length
                      pack_chunk(offer.update_id, 1, data[:-1]),                         # wrong length for index 1
                      pack_chunk(offer.update_id, offer.chunks + 5, data)],              # index past the end
        "unknown_update": [pack_chunk(uuid.uuid4().hex, 1, data)],
        "unsolicited": [pack_chunk(offer.update_id, 9, loop.sender.source.chunk(9))],     # out of order: not asked
    }
    for kind, payloads in cases.items():
        for p in payloads:
            loop.rx.on_chunk(topic, p)
        assert loop.rx.counters[kind] == len(payloads), (kind, loop.rx.counters)
    loop.rx.on_chunk("ota/data/" + "0" * 32, good)                                       # topic of another update
    assert loop.rx.counters["unknown_update"] == 2
    # a chunk whose bytes were altered (its header hash recomputed): the offer's hash list refuses it
    forged = bytearray(pack_chunk(offer.update_id, 1, b"\x01" + data[1:]))
    loop.rx.on_chunk(topic, bytes(forged))
    # a chunk whose header hash is right but the data is damaged on the way
    damaged = bytearray(good)
    damaged[HEADER.size + 7] ^= 0xFF
    loop.rx.on_chunk(topic, bytes(damaged))
    assert loop.rx.counters["wrong_hash"] == 2
    assert loop.asked().count(1) == 3, loop.requests                # asked again after each wrong hash
    for i in (1, 9):
        assert _staged_zero(loop, offer, i) and not loop.rx.dl.has(i)
    loop.rx.on_chunk(topic, good)
    loop.rx.on_chunk(topic, good)                                    # the same chunk again
    assert loop.rx.counters["duplicates"] == 1 and loop.rx.dl.has(1)
    loop.sender.reset()                                              # the host forgets the requests above
    loop.rx._w.lost_all()
    loop.rx._fill()
    loop.deliver()
    final = loop.wait_final()
    assert final["state"] == "committed", final
    assert loop.rx.counters["received"] == offer.chunks


def _offer_doc(**changes) -> bytes:
    doc = {"v": 1, "update_id": "a" * 32, "sha256": "b" * 64, "size": 10_000, "chunk_size": 4096, "chunks": 3,
           "hashes": base64.b64encode(bytes(96)).decode(), "model": {"name": "m", "version": "1"}}
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize("changes, words", [
    ({"size": 3 * 2 ** 30, "chunks": 3 * 2 ** 30 // 4096}, "over this device's limit"),
    ({"chunks": 4}, "make 3"),
    ({"hashes": base64.b64encode(bytes(64)).decode()}, "base64 of 3"),
    ({"v": 2}, "protocol 2"),
    ({"chunk_size": 100}, "chunk_size 100 is outside"),
    ({"update_id": "../../etc"}, "32 lowercase hex"),
    ({"size": -5}, "positive integer"),
])
def test_bad_offers_are_refused_before_anything_is_staged(tmp_path, bundles, changes, words):
    loop = Loop(tmp_path / "state", bundles["v1"])
    loop.rx.on_offer("ota/offer", _offer_doc(**changes))
    final = loop.reports[-1]
    assert final["state"] == "failed" and words in final["reason"], final
    assert loop.rx.counters["bad_offers"] == 1 and not loop.requests
    assert not list((tmp_path / "state").glob("staging/*"))
    assert loop.updater.status()["state"] == "committed"                       # the model in service is untouched


def test_a_bundle_for_another_profile_or_too_big_for_the_disk_is_refused_first(tmp_path, bundles):
    loop = Loop(tmp_path / "state", bundles["v1"], profile="apple-a17-m3")
    offer = loop.offer(bundles["pi"], profiles=("raspberry-pi-5",))
    loop.rx.on_offer("ota/offer", offer.to_bytes())
    assert loop.reports[-1]["state"] == "failed" and "not this device's apple-a17-m3" in loop.reports[-1]["reason"]
    big = Loop(tmp_path / "state2", bundles["v1"], reserve_bytes=1 << 62)       # more than any disk holds
    offer = big.offer(bundles["v2"])
    big.rx.on_offer("ota/offer", offer.to_bytes())
    assert big.reports[-1]["state"] == "failed" and "not enough disk space" in big.reports[-1]["reason"]
    assert not big.requests and not list((tmp_path / "state2").glob("staging/*"))


def test_a_restart_resumes_from_the_chunk_map_and_a_new_run_from_the_staged_file(tmp_path, bundles):
    state = tmp_path / "state"
    loop = Loop(state, bundles["v1"], window=4, checkpoint_s=0.0)
    offer = loop.offer(bundles["v2"])
    loop.rx.on_offer("ota/offer", offer.to_bytes())
    loop.deliver(limit=6)                                            # 6 of 16 chunks, then the device "dies"
    held = sorted(i for i in range(offer.chunks) if loop.rx.dl.has(i))
    assert len(held) == 6 and part_path(loop.updater.staging_path(offer.update_id)).exists()
    loop.rx.dl.close()
    again = Loop(state, window=4)                                    # a fresh process on the same state folder
    again.sender = loop.sender
    again.sender.reset()
    again.rx.on_offer("ota/offer", offer.to_bytes())
    assert not set(again.asked()) & set(held), "asked again for chunks it holds"
    assert again.rx.counters["resumed"] == 6
    again.rx.dl.close()
    third = Loop(state, window=4)                                    # and a new flash run of the same bytes
    newer = third.offer(bundles["v2"])
    assert newer.update_id != offer.update_id
    third.rx.on_offer("ota/offer", newer.to_bytes())
    assert third.rx.counters["resumed"] == 6 and not set(third.asked()) & set(held)
    third.deliver()
    final = third.wait_final()
    assert final["state"] == "committed" and final["update_id"] == newer.update_id
    assert third.sender.counters("dev")["sent"] == offer.chunks - 6


def test_a_damaged_staging_file_is_caught_by_the_whole_file_hash_and_refetched(tmp_path, bundles):
    loop = Loop(tmp_path / "state", bundles["v1"], window=32)
    offer = loop.offer(bundles["v2"])
    loop.rx.on_offer("ota/offer", offer.to_bytes())
    loop.deliver(limit=offer.chunks - 1)
    with open(loop.updater.staging_path(offer.update_id), "r+b") as fh:   # bit rot on the device's disk
        fh.seek(3 * CHUNK + 5)
        fh.write(b"\xff\x00\xff")
    loop.deliver()
    loop.rx._worker.join(10)                                          # whole-file sha256 is off: chunk 3 again
    assert loop.asked().count(3) == 2, loop.requests
    loop.deliver()
    final = loop.wait_final()
    assert final["state"] == "committed", final
    assert hashlib.sha256(loop.updater.active().read_bytes()).hexdigest() == offer.sha256


def test_a_finished_update_is_not_installed_twice_and_a_withdrawn_offer_stops_the_requests(tmp_path, bundles):
    loop = Loop(tmp_path / "state", bundles["v1"])
    offer = loop.offer(bundles["v2"])
    loop.rx.on_offer("ota/offer", offer.to_bytes())
    loop.deliver()
    assert loop.wait_final()["state"] == "committed"
    again = Loop(tmp_path / "state")                                  # restarted agent, same retained offer
    again.rx.on_offer("ota/offer", offer.to_bytes())
    assert again.reports[-1]["note"] == "already handled" and again.reports[-1]["state"] == "committed"
    assert not again.requests
    third = Loop(tmp_path / "state3", bundles["v1"], window=2)
    offer3 = third.offer(bundles["v2"])
    third.rx.on_offer("ota/offer", offer3.to_bytes())
    third.rx.on_offer("ota/offer", b"")                               # the host took the offer back
    n = len(third.requests)
    third.rx.tick()
    assert len(third.requests) == n and third.rx.dl is None
