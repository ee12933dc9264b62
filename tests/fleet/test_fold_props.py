"""Properties (hypothesis): the gate never lets a device through faster than its bucket allows, and the history's
``status`` folds any stream of device messages (reordered, repeated, idle periods, wills) into the same rows
as the live ``FleetState`` that saw the stream."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepack.fleet.fleetstate import FleetState
from edgepack.fleet.gate import Gate, GateSettings
from edgepack.fleet.history import open_history
from edgepack.fleet.messages import Message

from .envelopes import drift_body, message, payload, telemetry_body, topic

T0 = 1_800_000_000.0


@settings(max_examples=150, deadline=None)
@given(st.floats(0.5, 50), st.integers(1, 40), st.lists(st.floats(0, 5), min_size=1, max_size=300))
def test_the_bucket_bounds_every_device(rate, burst, gaps):
    gate = Gate(GateSettings(rate=rate, burst=burst))
    raw, now, times = payload("d", telemetry_body(), ts=T0), T0, []
    for gap in gaps:
        now += gap
        if isinstance(gate.check(topic("d", "telemetry"), raw, now), Message):
            times.append(now)
    # within any window [a, b] at most burst + rate * (b - a) messages pass
    for i in range(len(times)):
        for j in range(i, len(times)):
            assert j - i + 1 <= burst + rate * (times[j] - times[i]) + 1e-6
    c = gate.counters()
    assert c["accepted"] == len(times) and c["rejected"]["flood"] == len(gaps) - len(times)


def _telemetry(draw, device, seq, ts):
    idle = draw(st.booleans())
    figures = dict(p50=0.0, p95=0.0, calls=0, cost_per_1k=None) if idle else dict(
        p50=draw(st.floats(0.1, 50)), p95=draw(st.floats(50, 100)), calls=draw(st.integers(1, 500)),
        cost_per_1k=draw(st.none() | st.floats(0, 1)))
    model = draw(st.sampled_from(["a", "b"]))
    return message(device, "telemetry", telemetry_body(**figures, model=model, errors=draw(st.integers(0, 5))),
                   seq=seq, ts=ts, received=ts + 0.1)


@st.composite
def streams(draw):
    msgs, clock = [], T0
    for device in ("d0", "d1", "d2"):
        seq = 0
        for _ in range(draw(st.integers(1, 12))):
            clock += draw(st.floats(0.01, 10))
            kind = draw(st.sampled_from(["telemetry", "telemetry", "drift", "state", "events", "ota/status"]))
            if kind == "state":
                msgs.append(message(device, "state", state=draw(st.sampled_from(["online", "offline"])),
                                    ts=draw(st.sampled_from([T0, clock])), received=clock))
                continue
            seq += draw(st.integers(1, 3))               # now and then one lost on the way
            if kind == "telemetry":
                msgs.append(_telemetry(draw, device, seq, clock))
            elif kind == "drift":
                counts = draw(st.lists(st.integers(0, 50), min_size=4, max_size=4))
                msgs.append(message(device, "drift", drift_body(counts=counts, psi=draw(st.floats(0, 2))),
                                    seq=seq, ts=clock, received=clock))
            elif kind == "events":
                msgs.append(message(device, "events", {"type": draw(st.sampled_from(["x", "y"]))}, seq=seq,
                                    ts=clock, received=clock))
            else:
                msgs.append(message(device, "ota/status", {"update_id": "u", "state": draw(st.sampled_from(
                    ["downloading", "committed"])), "progress": 0.5}, seq=seq, ts=clock, received=clock))
    msgs.sort(key=lambda m: m.received)
    # resends and retained ones, delivered again (arriving now: later than everything before)
    repeats = [replace(m, received=clock + 1 + i) for i, m in enumerate(draw(st.lists(st.sampled_from(msgs),
                                                                                       max_size=5)))]
    return msgs + repeats


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(1, 20))
def test_history_status_folds_like_the_live_view(msgs, batch):
    live = FleetState()
    for m in msgs:
        live.apply(m)
    h = open_history("sqlite:///:memory:")
    for i in range(0, len(msgs), batch):
        h.add(msgs[i:i + batch])
    stored = {r["device"]: r for r in h.status()}
    skip = ("messages", "lost", "replayed")           # counters: per process live, over kept rows in history
    for row in live.snapshot()["devices"]:
        assert {k: v for k, v in stored[row["device"]].items() if k not in skip} == \
            {k: v for k, v in row.items() if k not in skip}
    h.close()
