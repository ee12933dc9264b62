"""Pieces of the rollout without a broker: the baseline read back from a real SQLite fleet history (counts
recovered from the stored rates), which model the observer says a device serves (only statuses that name the
served model count, newest word wins), the share of drift windows, and the gates' verdicts and sentences."""
from __future__ import annotations

import json
import time

from edgepack.fleet.history import open_history
from edgepack.fleet.messages import Message, parse
from edgepack.fleet.rollout_gates import Gates, figures, judge
from edgepack.fleet.rollout_watch import Observer, Period, Window, history_periods


def _msg(kind: str, body: dict, ts: float, seq: int | None = 1, device: str = "d1") -> Message:
    payload = json.dumps({"schema": 1, "ts": ts, "device": device, "fleet": "f", **({"seq": seq} if seq is not None
                                                                                     else {}), **body}).encode()
    msg = parse(f"edgepack/v1/f/{device}/{kind}", payload, now=time.time())
    assert isinstance(msg, Message), msg
    return msg


def _telemetry(calls: int, errors: int, p95: float, version: str = "1") -> dict:
    return {"telemetry": {"calls": calls, "throughput_per_s": calls / 2, "period_s": 2.0, "model": "m",
                          "model_version": version, "bundle_sha256": "s" + version, "errors": {"E": errors} if errors
                          else {}, "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95}}}


def test_a_baseline_from_the_fleet_history(tmp_path):
    now = time.time()
    h = open_history(f"sqlite:///{tmp_path}/h.db")
    try:
        h.add([_msg("telemetry", _telemetry(30, 10, 4.0), now - 30, 1),
               _msg("telemetry", _telemetry(40, 0, 2.0), now - 20, 2),
               _msg("telemetry", _telemetry(0, 5, 0.0), now - 10, 3),
               _msg("drift", {"drift": {"calls": 9, "tensors": {}, "alerts": [{"tensor": "x"}]}}, now - 15, 4),
               _msg("telemetry", _telemetry(50, 0, 9.0), now - 500, 5)])                # outside the window
        periods, windows = history_periods(h, "d1", since=now - 60, until=now)
    finally:
        h.close()
    assert [(p.calls, p.errors, p.p95) for p in periods] == [(30, 10, 4.0), (40, 0, 2.0), (0, 1, None)]
    assert [w.alerts for w in windows] == [1]
    f = figures(periods, windows)
    assert (f["calls"], f["errors"], f["p95_ms"], f["drift_share"]) == (70, 11, 2.0, 1.0)


def test_the_observer_names_the_served_model_from_truthful_messages_only():
    obs, t0 = Observer("f"), time.time() - 100
    obs.on_message(_msg("telemetry", _telemetry(5, 0, 1.0, "1"), t0, 1))
    assert obs.model("d1") == "m@1"
    for state, seq in (("downloading", 2), ("failed", 3)):       # these name the offered bundle
        obs.on_message(_msg("ota/status", {"state": state, "model": {"name": "m", "version": "2"}}, t0 + seq, seq))
        assert obs.model("d1") == "m@1"
    obs.on_message(_msg("ota/status", {"state": "shadowing", "mode": "shadow", "model": {"name": "m", "version": "3"}},
                        t0 + 4, 4))
    assert obs.model("d1") == "m@1" and obs.shadow_status["d1"]["state"] == "shadowing"
    obs.on_message(_msg("ota/status", {"state": "committed", "model": {"name": "m", "version": "2"}}, t0 + 5, 5))
    assert obs.model("d1") == "m@2" and obs.switched("d1", "m@2") == t0 + 5
    obs.on_message(_msg("telemetry", _telemetry(5, 0, 1.0, "2"), t0 + 6, 6))
    obs.on_message(_msg("ota/status", {"state": "rolled_back", "model": {"name": "m", "version": "1"}}, t0 + 7, 7))
    assert obs.model("d1") == "m@1"                                # the rollback is newer than the telemetry
    obs.on_message(_msg("telemetry", _telemetry(5, 0, 1.0, "1"), t0 + 6, 6))   # a resend: counted once
    assert len(obs.periods("d1")) == 2 and len(obs.periods("d1", since=t0 + 4, sha="s2")) == 1


def _side(periods, windows=()) -> dict:
    f = figures(periods, list(windows))
    return {"all": f, "devices": {"d1": f, "d2": figures([], [])}}


def test_gates_say_which_gate_which_devices_and_which_figures():
    old = _side([Period(1, 0, 100, 0, 2.0, "m@1", "a")])
    slow = _side([Period(3, 2, 100, 1, 9.0, "m@2", "b"), Period(4, 3, 100, 0, 11.0, "m@2", "b")],
                 [Window(3, 2, 9), Window(4, 0, 9)])
    d = judge(old, slow, Gates(max_error_rate=0.01, max_p95_ratio=1.5, max_drift=0.2, min_calls=10))
    assert d["failed"] == ["telemetry", "p95_ratio", "drift"] and not d["passed"]
    gates = {g["gate"]: g for g in d["gates"]}
    assert gates["telemetry"]["devices"] == ["d2"] and gates["error_rate"]["passed"]          # 1/201 <= 1%
    assert gates["p95_ratio"]["value"] == 4.5 and gates["p95_ratio"]["devices"] == ["d1"]
    assert "p95 latency 9 ms is 4.5x the previous model's 2 ms" in d["reason"]
    assert gates["drift"]["value"] == 0.5 and "1 of 2 drift windows (50%)" in d["reason"]
    quiet = judge(old, _side([]), Gates(min_calls=10))
    assert {g["gate"]: g["judged"] for g in quiet["gates"]} == {"telemetry": True, "traffic": True,
                                                                "error_rate": False, "p95_ratio": False, "drift": False}
    assert quiet["failed"] == ["telemetry", "traffic"] and "lengthen --soak" in quiet["reason"]


def test_the_p95_floor_keeps_sub_millisecond_jitter_from_stopping_a_rollout():
    old, jitter, slow = (_side([Period(1, 0, 100, 0, p95, "m", "a")]) for p95 in (0.5, 1.8, 9.0))
    g = Gates(max_p95_ratio=4.0, p95_floor_ms=2.0, min_calls=0)
    assert judge(old, jitter, Gates(max_p95_ratio=3.0, min_calls=0))["failed"] == ["telemetry", "p95_ratio"]
    assert judge(old, jitter, g)["failed"] == ["telemetry"]          # 1.8 ms vs 0.5 ms: both count as 2 ms
    d = judge(old, slow, g)
    gate = next(x for x in d["gates"] if x["gate"] == "p95_ratio")
    assert gate["value"] == 4.5 and not gate["passed"] and "latencies under 2 ms count as 2 ms" in gate["why"]
