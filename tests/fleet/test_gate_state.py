"""The ingest gate (flood control, device cap, counters) and the live FleetState (online from birth and will,
model, latency, errors, drift, OTA, lost and replayed messages, sorting, filtering, bounded series)."""
from __future__ import annotations

import threading

import pytest

from edgepack.fleet.fleetstate import FleetState
from edgepack.fleet.gate import Gate, GateSettings
from edgepack.fleet.messages import Message

from .envelopes import drift_body, message, payload, state_payload, telemetry_body, topic

T0 = 1_800_000_000.0


def test_a_flooding_device_is_limited_and_counted_while_others_pass():
    gate = Gate(GateSettings(rate=10, burst=20))
    raw = payload("loud", telemetry_body(), ts=T0)
    outs = [gate.check(topic("loud", "telemetry"), raw, T0) for _ in range(100)]   # 100 at the same instant
    assert sum(isinstance(o, Message) for o in outs) == 20
    assert {o.reason for o in outs if not isinstance(o, Message)} == {"flood"}
    assert isinstance(gate.check(topic("quiet", "telemetry"), payload("quiet", telemetry_body(), ts=T0), T0), Message)
    # one second later the bucket holds 10 tokens again
    later = [gate.check(topic("loud", "telemetry"), raw, T0 + 1.0) for _ in range(15)]
    assert sum(isinstance(o, Message) for o in later) == 10
    c = gate.counters()
    assert c["accepted"] == 31 and c["rejected"]["flood"] == 85 and sum(c["rejected"].values()) == 85
    assert gate.recent()[-1]["reason"] == "flood" and "loud" in gate.recent()[-1]["detail"]


def test_invented_device_names_cannot_grow_memory():
    gate = Gate(GateSettings(max_devices=50))
    for i in range(80):
        gate.check(topic(f"d{i}", "telemetry"), payload(f"d{i}", telemetry_body(), ts=T0), T0)
    c = gate.counters()
    assert c["accepted"] == 50 and c["rejected"]["too_many_devices"] == 30


def test_bad_input_is_counted_by_reason_and_never_raises():
    gate = Gate()
    gate.check(topic("d1", "telemetry"), b"not json", T0)
    gate.check(topic("d1", "telemetry"), payload("d1", telemetry_body(), ts=T0 + 3600), T0)
    gate.check(topic("d1", "telemetry"), payload("d2", telemetry_body(), ts=T0), T0)
    gate.check(topic("d1", "telemetry"), payload("d1", {"telemetry": {"calls": -1}}, ts=T0), T0)
    gate.check(topic("d1", "weird"), b"{}", T0)
    r = gate.counters()["rejected"]
    assert (r["not_json"], r["future_ts"], r["identity"], r["schema"], r["unknown_kind"]) == (1, 1, 1, 1, 1)
    assert gate.counters()["accepted"] == 0


def fold(*msgs) -> FleetState:
    state = FleetState()
    for m in msgs:
        state.apply(m)
    return state


def test_online_comes_from_birth_and_will_in_arrival_order():
    # the will was composed at connect time, so its ts is older than the birth's: arrival order decides
    birth = message("d1", "state", ts=T0 + 1, received=T0 + 1)
    will = message("d1", "state", state="offline", ts=T0, received=T0 + 50)
    assert fold(birth).snapshot()["devices"][0]["online"] is True
    row = fold(birth, will).snapshot()["devices"][0]
    assert row["online"] is False and row["state_ts"] == T0


def test_a_device_that_never_sent_state_is_listed_as_unknown():
    row = fold(message("d9", "telemetry", telemetry_body(p50=2.0, p95=4.0), ts=T0, received=T0)).snapshot()
    row = row["devices"][0]
    assert row["online"] is None and row["p95_ms"] == 4.0 and row["model"] == "adder"


def test_telemetry_drift_and_ota_fill_the_row():
    state = fold(message("d1", "state", ts=T0, received=T0),
                 message("d1", "telemetry", telemetry_body(p50=2.0, p95=5.0, calls=90, errors=10, cost_per_1k=0.25,
                                                energy_j_per_1k=12.5, busy_share=0.5),
                         seq=1, ts=T0 + 10, received=T0 + 10),
                 message("d1", "drift", drift_body(alerts=[{"tensor": "x", "kind": "inputs", "metrics": ["psi"]}],
                                                   psi=0.7), seq=2, ts=T0 + 11, received=T0 + 11),
                 message("d1", "ota/status", {"update_id": "u2", "state": "downloading", "progress": 0.4},
                         seq=3, ts=T0 + 12, received=T0 + 12),
                 message("d1", "events", {"type": "drift_alert"}, seq=4, ts=T0 + 13, received=T0 + 13))
    row = state.snapshot()["devices"][0]
    assert (row["online"], row["model"], row["version"], row["backend"]) == (True, "adder", "1.0", "onnxruntime")
    assert (row["p50_ms"], row["p95_ms"], row["throughput"], row["calls"], row["errors"]) == (2.0, 5.0, 9.0, 90, 10)
    assert row["error_rate"] == pytest.approx(0.1) and row["cost_per_1k"] == 0.25
    assert (row["energy_j_per_1k"], row["busy_share"]) == (12.5, 0.5)
    assert (row["drift_alerts"], row["drift_psi"], row["last_event"]) == (1, 0.7, "drift_alert")
    assert (row["ota_state"], row["ota_update_id"], row["ota_progress"]) == ("downloading", "u2", 0.4)
    assert (row["last_seen"], row["messages"], row["lost"], row["replayed"]) == (T0 + 13, 5, 0, 0)
    assert state.series("d1", "p95_ms") == [(T0 + 10, 5.0)] and state.series("d1", "drift_psi") == [(T0 + 11, 0.7)]
    assert state.device("d1")["drift"]["alerts"][0]["tensor"] == "x"
    assert state.drift_summaries(model="adder")[0]["bundle_sha256"] == "ab" * 32


def test_gaps_are_lost_and_resends_replayed_without_going_back_in_time():
    t = [message("d1", "telemetry", telemetry_body(p95=float(s)), seq=s, ts=T0 + s, received=T0 + s)
         for s in (1, 2, 5, 6)]
    state = fold(*t, t[1])                         # 3 and 4 never came; 2 was sent again after a reconnect
    row = state.snapshot()["devices"][0]
    assert (row["lost"], row["replayed"], row["p95_ms"], row["messages"]) == (2, 1, 6.0, 4)


def test_retained_messages_delivered_again_are_not_news():
    birth = message("d1", "state", ts=T0, received=T0)
    ota = message("d1", "ota/status", {"update_id": "u", "state": "committed"}, seq=7, ts=T0, received=T0)
    state = fold(birth, ota, message("d1", "telemetry", telemetry_body(), seq=8, ts=T0 + 1, received=T0 + 1),
                 birth, ota)
    row = state.snapshot()["devices"][0]
    assert (row["messages"], row["lost"], row["replayed"]) == (3, 0, 0)


def test_snapshot_sorts_and_filters():
    msgs = [message(f"d{i}", "telemetry", telemetry_body(p95=float(10 - i), model="a" if i % 2 else "b"),
                    seq=1, ts=T0, received=T0) for i in range(6)]
    msgs.append(message("x", "state", fleet="g", ts=T0, received=T0))
    state = fold(*msgs)
    snap = state.snapshot(sort="-p95_ms")
    assert [r["device"] for r in snap["devices"]][:6] == ["d0", "d1", "d2", "d3", "d4", "d5"]
    assert snap["devices"][-1]["device"] == "x"           # no figure: last, either way
    assert [r["device"] for r in state.snapshot(sort="p95_ms")["devices"]] == ["d5", "d4", "d3", "d2", "d1", "d0", "x"]
    assert [r["device"] for r in state.snapshot(model="a")["devices"]] == ["d1", "d3", "d5"]
    assert [r["device"] for r in state.snapshot(fleet="g")["devices"]] == ["x"]
    with pytest.raises(ValueError, match="cannot sort by 'bogus'"):
        state.snapshot(sort="bogus")


def test_series_stay_bounded_and_apply_is_thread_safe():
    state = FleetState(series_len=50)

    def feed(device):
        for s in range(1, 301):
            state.apply(message(device, "telemetry", telemetry_body(p95=float(s)), seq=s, ts=T0 + s, received=T0 + s))
    threads = [threading.Thread(target=feed, args=(f"d{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i in range(4):
        points = state.series(f"d{i}", "p95_ms")
        assert len(points) == 50 and points[-1] == (T0 + 300, 300.0)
        assert state.series(f"d{i}", "p95_ms", since=T0 + 291) == [(T0 + s, float(s)) for s in range(291, 301)]
    assert state.applied == 1200 and len(state.snapshot()["devices"]) == 4


def test_state_announcement_fields_fill_the_row_until_telemetry_speaks():
    raw = state_payload("d1", ts=T0, profile="rpi5", model="old", version="0.9")
    from edgepack.fleet.messages import parse
    state = fold(parse(topic("d1", "state"), raw, now=T0))
    assert state.snapshot()["devices"][0]["model"] == "old"
    state.apply(message("d1", "telemetry", telemetry_body(model="new", version="2"), ts=T0 + 1, received=T0 + 1))
    row = state.snapshot()["devices"][0]
    assert (row["model"], row["version"], row["profile"]) == ("new", "2", "rpi5")
