"""The ingest parser on untrusted input (hypothesis): it never raises, accepts exactly the agent's envelopes,
and refuses everything else with the right reason."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepack.fleet.messages import MAX_PAYLOAD, REASONS, Message, Rejected, parse

from .envelopes import drift_body, payload, state_payload, telemetry_body, topic

NOW = 1_800_000_000.0
names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters="/+#",
                                blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")),
                min_size=1, max_size=20)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                           | st.text(max_size=10), lambda c: st.lists(c, max_size=4) | st.dictionaries(
                               st.text(max_size=8), c, max_size=4), max_leaves=20)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(st.text(max_size=80), st.binary(max_size=300))
def test_any_bytes_on_any_topic_never_raise(t, raw):
    out = parse(t, raw, now=NOW)
    assert isinstance(out, (Message, Rejected))
    if isinstance(out, Rejected):
        assert out.reason in REASONS and out.detail


@fast
@given(names, names, st.sampled_from(["state", "telemetry", "drift", "events", "ota/status"]), json_values)
def test_any_json_never_raises(fleet, device, kind, value):
    out = parse(f"edgepack/v1/{fleet}/{device}/{kind}", json.dumps(value).encode(), now=NOW)
    assert isinstance(out, Rejected)          # no JSON value of this shape carries schema, ts, device, fleet
    assert out.reason in ("schema", "not_json", "identity")


@fast
@given(names, names, st.integers(0, 2**53), st.floats(1e9, NOW + 100), st.floats(0, 1e4), st.integers(0, 10**6))
def test_agent_telemetry_is_accepted_as_sent(fleet, device, seq, ts, p95, calls):
    body = telemetry_body(p95=p95, calls=calls)
    out = parse(topic(device, "telemetry", fleet), payload(device, body, seq=seq, ts=ts, fleet=fleet), now=NOW)
    assert isinstance(out, Message), out
    assert (out.fleet, out.device, out.kind, out.seq, out.ts) == (fleet, device, "telemetry", seq, ts)
    assert out.body["telemetry"]["latency_ms"]["p95"] == p95 and out.received == NOW


@fast
@given(names, names, st.floats(NOW + 120.001, 4e9))
def test_future_timestamps_are_refused(fleet, device, ts):
    out = parse(topic(device, "telemetry", fleet), payload(device, telemetry_body(), ts=ts, fleet=fleet), now=NOW)
    assert isinstance(out, Rejected) and out.reason == "future_ts"
    assert "ahead of this host's clock" in out.detail


@fast
@given(names, names, names)
def test_a_body_naming_another_device_is_refused(fleet, device, other):
    raw = payload(other, telemetry_body(), fleet=fleet, ts=NOW)
    out = parse(topic(device, "telemetry", fleet), raw, now=NOW)
    if other == device:
        assert isinstance(out, Message)
    else:
        assert isinstance(out, Rejected) and out.reason == "identity" and out.device == device


@fast
@given(st.sampled_from(["schema", "seq", "ts", "device", "fleet"]), json_values)
def test_a_wrong_envelope_field_is_refused(field, value):
    doc = json.loads(payload("d1", telemetry_body(), ts=NOW - 5))
    good = doc[field]
    doc[field] = value
    out = parse(topic("d1", "telemetry"), json.dumps(doc).encode(), now=NOW)
    ok = value == good and type(value) is type(good)
    if field == "ts" and isinstance(value, (int, float)) and not isinstance(value, bool) and 1e9 <= value <= NOW:
        ok = True
    if field == "seq" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        ok = True
    if field == "schema" and value == 1 and not isinstance(value, bool):
        ok = True
    assert isinstance(out, Message) == ok, (field, value, out)


@fast
@given(st.sampled_from(["calls", "throughput_per_s", "latency_ms", "errors", "model"]), json_values)
def test_a_wrong_telemetry_field_is_a_schema_error(field, value):
    body = telemetry_body()
    body["telemetry"][field] = value
    out = parse(topic("d1", "telemetry"), payload("d1", body, ts=NOW), now=NOW)
    if isinstance(out, Rejected):
        assert out.reason == "schema" and f"telemetry.{field}" in out.detail
    else:   # only values of the right type get through
        t = out.body["telemetry"]
        assert {"calls": lambda v: isinstance(v, int) and v >= 0, "throughput_per_s": lambda v: v >= 0,
                "latency_ms": lambda v: isinstance(v, dict), "errors": lambda v: isinstance(v, dict),
                "model": lambda v: v is None or isinstance(v, str)}[field](t[field])


@fast
@given(st.lists(st.integers(-5, 10**9) | st.floats(-1, 10) | st.text(max_size=3), max_size=20))
def test_drift_counts_must_be_counts(counts):
    out = parse(topic("d1", "drift"), payload("d1", drift_body(counts=()) | {"drift": {
        "calls": 1, "alerts": [], "tensors": {"x": {"counts": counts}}}}, ts=NOW), now=NOW)
    good = all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
    assert isinstance(out, Message) == good
    if not good:
        assert out.reason == "schema" and "counts" in out.detail


def test_each_kind_as_the_agent_sends_it():
    for kind, raw in [("state", state_payload("d1", ts=NOW, profile="pi5", ota=1)),
                      ("state", state_payload("d1", "offline", ts=NOW)),
                      ("telemetry", payload("d1", telemetry_body(), ts=NOW)),
                      ("drift", payload("d1", drift_body(), ts=NOW)),
                      ("events", payload("d1", {"type": "drift_alert", "alerts": []}, ts=NOW)),
                      ("ota/status", payload("d1", {"update_id": "u", "state": "committed", "progress": 1.0,
                                                    "reason": None}, ts=NOW))]:
        out = parse(topic("d1", kind), raw, now=NOW)
        assert isinstance(out, Message) and out.kind == kind, (kind, out)
        assert out.seq == (None if kind == "state" else 1)


def test_refusals_say_what_is_wrong():
    cases = {
        ("edgepack/v2/f/d1/telemetry", b"{}"): "topic",
        ("edgepack/v1/f/d1", b"{}"): "topic",
        ("edgepack/v1/f/d\x001/telemetry", b"{}"): "topic",
        ("edgepack/v1/f/d\u200b1/telemetry", b"{}"): "topic",      # invisible characters: a look-alike name
        (topic("d1", "cmd/reboot"), b"{}"): "unknown_kind",
        (topic("d1", "telemetry"), b"x" * (MAX_PAYLOAD + 1)): "too_large",
        (topic("d1", "telemetry"), b"\xff\xfe"): "not_json",
        (topic("d1", "telemetry"), b'{"a": NaN}'): "not_json",
        (topic("d1", "telemetry"), b'{"a": 1e400}'): "schema",       # inf where a number must be: no schema
        (topic("d1", "telemetry"), b"[" * 10000): "not_json",
        (topic("d1", "telemetry"), b""): "schema",
        (topic("d1", "telemetry"), payload("d1", telemetry_body(), ts=NOW, schema=2)): "schema",
        (topic("d1", "telemetry"), payload("d1", telemetry_body(), ts=5.0)): "schema",
        (topic("d1", "telemetry"), payload("d1", telemetry_body(), seq=None, ts=NOW)): "schema",
        (topic("d1", "state"), state_payload("d1", "asleep", ts=NOW)): "schema",
        (topic("d1", "events"), payload("d1", {"type": 3}, ts=NOW)): "schema",
        (topic("d1", "telemetry"), payload("d1", telemetry_body(), ts=NOW, fleet="g")): "identity",
    }
    for (t, raw), reason in cases.items():
        out = parse(t, raw, now=NOW)
        assert isinstance(out, Rejected) and out.reason == reason, (t, raw[:40], out)
