"""Property tests of the rollout's parsers and arithmetic: the state file reader (any bytes, any JSON, a valid
document with one field broken), the wave plan (every device in exactly one wave, the canary never empty,
cumulative sizes), the share parsers, the observer fed whatever the monitor's parser lets through, and the
gates (error-rate gate passes exactly when the rate is within the limit)."""
from __future__ import annotations

import json
import math
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepack.fleet.messages import Message, parse
from edgepack.fleet.rollout_gates import Gates, figures, judge, weighted_median
from edgepack.fleet.rollout_state import RolloutError, load, new_state, parse_share, parse_waves, plan_waves, save
from edgepack.fleet.rollout_watch import Observer, Period, Window

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCALAR = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20)
JSON = st.recursive(SCALAR, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                    max_leaves=8)


def _valid() -> dict:
    return new_state(bundle={"path": "/b.edgepack", "sha256": "0" * 64, "model_id": "m@1"}, fleet="f",
                     broker="mqtt://127.0.0.1:1", settings={}, waves=plan_waves(["a", "b", "c"], 0.1, [1.0]),
                     skipped=[])


@FAST
@given(data=st.binary(max_size=300))
def test_the_state_reader_takes_any_bytes(tmp_path, data):
    path = tmp_path / "s.json"
    path.write_bytes(data)
    try:
        load(path)
    except RolloutError as exc:
        assert "s.json" in str(exc)


@FAST
@given(key=st.sampled_from(["schema", "kind", "status", "bundle", "settings", "waves", "fleet", "broker",
                            "updated_devices"]), value=JSON)
def test_a_valid_state_with_one_field_replaced_loads_or_says_why(tmp_path, key, value):
    doc = _valid()
    save(tmp_path / "s.json", doc)
    assert load(tmp_path / "s.json") == json.loads(json.dumps(doc))
    doc[key] = value
    (tmp_path / "s.json").write_text(json.dumps(doc))
    try:
        assert isinstance(load(tmp_path / "s.json"), dict)
    except RolloutError as exc:
        assert "not a usable rollout state" in str(exc) or "cannot read" in str(exc)


@FAST
@given(wave=JSON, at=st.integers(0, 1))
def test_a_broken_wave_is_refused(tmp_path, wave, at):
    doc = _valid()
    doc["waves"][at] = wave
    (tmp_path / "s.json").write_text(json.dumps(doc))
    try:
        load(tmp_path / "s.json")
    except RolloutError as exc:
        assert f"wave {at}" in str(exc)


@FAST
@given(n=st.integers(1, 300), canary=st.integers(1, 100), waves=st.lists(st.integers(1, 100), min_size=1, max_size=6,
                                                                           unique=True))
def test_the_plan_puts_every_device_in_exactly_one_wave(n, canary, waves):
    devices = [f"d{i}" for i in range(n)]
    shares = sorted(w / 100 for w in waves)
    plan = plan_waves(devices, canary / 100, shares)
    flat = [d for w in plan for d in w["devices"]]
    assert len(flat) == len(set(flat)) and set(flat) <= set(devices)
    assert plan[0]["name"] == "canary" and len(plan[0]["devices"]) == max(1, min(n, math.ceil(canary / 100 * n - 1e-9)))
    assert all(w["devices"] for w in plan)
    top = max([canary / 100] + shares)
    assert len(flat) == max(1, min(n, math.ceil(top * n - 1e-9)))
    assert plan == plan_waves(list(reversed(devices)), canary / 100, shares)     # order-independent


@FAST
@given(text=st.text(max_size=30))
def test_share_parsers_return_shares_or_say_what_is_wrong(text):
    for fn in (lambda t: [parse_share(t, "--canary")], parse_waves):
        try:
            values = fn(text)
        except RolloutError as exc:
            assert "%" in str(exc)
        else:
            assert all(0 < v <= 1 for v in values) and values == sorted(set(values))


BODY = st.fixed_dictionaries({"telemetry": st.fixed_dictionaries(
    {"calls": st.integers(0, 10**6), "throughput_per_s": st.floats(0, 1e6),
     "latency_ms": st.fixed_dictionaries({"p50": st.floats(0, 1e5), "p95": st.floats(0, 1e5)}),
     "errors": st.dictionaries(st.text(max_size=8), st.integers(0, 10**6), max_size=3)},
    optional={"period_s": JSON, "model": JSON, "model_version": JSON, "bundle_sha256": JSON})})
OTA = st.fixed_dictionaries({"state": st.text(max_size=12)}, optional={"model": JSON, "update_id": st.text(max_size=8)})


@FEW
@given(items=st.lists(st.tuples(st.sampled_from(["telemetry", "ota/status", "drift", "state"]), BODY, OTA,
                                st.integers(0, 50)), max_size=8))
def test_the_observer_takes_whatever_the_monitor_accepts(items):
    obs, now = Observer("f"), time.time()
    for kind, tele, ota, seq in items:
        tele = {"telemetry": tele["telemetry"]}
        drift = {"drift": {"calls": seq, "tensors": {}, "alerts": [{}] * (seq % 3)}}
        body = {"telemetry": tele, "ota/status": ota, "drift": drift, "state": {"state": "online"}}[kind]
        payload = json.dumps({"schema": 1, "ts": now, "seq": seq, "device": "d", "fleet": "f", **body}).encode()
        msg = parse(f"edgepack/v1/f/d/{kind}", payload, now=now)
        if isinstance(msg, Message):
            obs.on_message(msg)
    obs.model("d")
    obs.switched("d", "m@1")
    per = {"d": (obs.periods("d", since=now - 10), obs.windows("d"))}
    judge({"all": figures([], []), "devices": {}}, {"all": figures(*per["d"]), "devices": {"d": figures(*per["d"])}},
          Gates())


PERIOD = st.builds(Period, ts=st.floats(1e9, 2e9), start=st.floats(1e9, 2e9), calls=st.integers(0, 1000),
                   errors=st.integers(0, 1000), p95=st.none() | st.floats(0, 1e4), model=st.none(), sha=st.none())


@FAST
@given(old=st.lists(PERIOD, max_size=8), new=st.lists(PERIOD, max_size=8),
       windows=st.lists(st.builds(Window, ts=st.floats(1e9, 2e9), alerts=st.integers(0, 3), calls=st.integers(0, 9)),
                        max_size=5), limit=st.floats(0, 1))
def test_the_error_gate_passes_exactly_within_its_limit(old, new, windows, limit):
    f_old, f_new = figures(old, []), figures(new, windows)
    decision = judge({"all": f_old, "devices": {"d": f_old}}, {"all": f_new, "devices": {"d": f_new}},
                     Gates(max_error_rate=limit, min_calls=0))
    gate = next(g for g in decision["gates"] if g["gate"] == "error_rate")
    n = f_new["calls"] + f_new["errors"]
    assert gate["judged"] == (n > 0)
    if n:
        assert gate["passed"] == (f_new["errors"] / n <= limit + 1e-6 or round(f_new["errors"] / n, 6) <= limit)
    assert decision["passed"] == (not decision["failed"])


@given(pairs=st.lists(st.tuples(st.floats(0, 1e4), st.integers(0, 50)), max_size=20))
def test_weighted_median_is_a_value_with_half_the_weight_on_each_side(pairs):
    m = weighted_median(pairs)
    total = sum(w for _, w in pairs)
    if not total:
        assert m is None
        return
    assert sum(w for v, w in pairs if v <= m) * 2 >= total and sum(w for v, w in pairs if v >= m) * 2 >= total
