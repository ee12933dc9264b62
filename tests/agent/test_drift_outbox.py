"""Unit level: fleet-wide drift from device summaries, the guards on weak baselines, and the outbox under a
full or unusable disk."""
from __future__ import annotations

import numpy as np
import pytest

from edgepack_runtime.drift import DriftMonitor, Thresholds, compute_baseline, fleet_drift, psi
from edgepack_runtime.outbox import Outbox

RNG = np.random.default_rng(3)
W = RNG.standard_normal((16, 5))


def _pair(scale=1.0, offset=0.0):
    x = (RNG.standard_normal((1, 16)) * scale + offset).astype(np.float32)
    return {"x": x}, {"y": (x @ W).astype(np.float32)}


@pytest.fixture(scope="module")
def baseline():
    pairs = [_pair() for _ in range(1000)]
    return compute_baseline([p[0] for p in pairs], [p[1] for p in pairs])


def test_fleet_drift_equals_one_monitor_over_all_the_traffic(baseline):
    devices = [DriftMonitor(baseline, window_count=10 ** 9) for _ in range(3)]
    whole = DriftMonitor(baseline, window_count=10 ** 9)
    for i in range(300):
        pair = _pair(scale=1.0 if i % 3 else 1.6)           # one device in three sees scaled inputs
        devices[i % 3].observe(*pair)
        whole.observe(*pair)
    fleet = fleet_drift(baseline, [d.summary() for d in devices])
    one = whole.summary()
    assert fleet["devices"] == 3 and fleet["calls"] == 300
    for name in ("x", "y"):
        assert fleet["tensors"][name]["counts"] == one["tensors"][name]["counts"]
        assert fleet["tensors"][name]["psi"] == pytest.approx(one["tensors"][name]["psi"])
    assert fleet["tensors"]["y"]["class_counts"] == one["tensors"]["y"]["class_counts"]
    assert sum(fleet["tensors"]["y"]["class_counts"]) == 300
    assert fleet["alerts"] == one["alerts"]


def test_calibration_stream_raises_no_alert_over_a_long_run(baseline):
    mon = DriftMonitor(baseline, window_count=50)
    alerted = 0
    for _ in range(50 * 200):                              # 200 windows of 50 calls (800 + 250 values each)
        mon.observe(*_pair())
        if mon.window_full():
            alerted += bool(mon.summary()["alerts"])
    assert alerted == 0


@pytest.mark.parametrize("kw", [{"scale": 2.0}, {"offset": 1.0}])
def test_shifted_stream_alerts_within_25_samples(baseline, kw):
    mon = DriftMonitor(baseline, window_count=25, thresholds=Thresholds(min_samples=0))
    for _ in range(25):
        mon.observe(*_pair(**kw))
    alerts = mon.summary()["alerts"]
    assert {"tensor": "x", "kind": "inputs"}.items() <= alerts[0].items()


def test_a_baseline_with_too_few_values_is_reported_not_judged():
    tiny = compute_baseline([{"x": np.array([[float(i)]], np.float32)} for i in range(8)], [])
    assert len(tiny["inputs"]["x"]["counts"]) == 2          # 8 values: 2 bins, not 16 near-empty ones
    mon = DriftMonitor(tiny, window_count=500)
    for _ in range(500):
        mon.observe({"x": np.array([[100.0]], np.float32)}, {})
    s = mon.summary()
    assert s["tensors"]["x"]["psi"] > 1 and s["alerts"] == []


def test_class_mix_needs_enough_counts_per_class():
    k = 50
    outs = [{"y": np.eye(k, dtype=np.float32)[[i % k]]} for i in range(100)]   # 2 per class in the baseline
    base = compute_baseline([{"x": np.zeros((1, 1), np.float32)}] * 100, outs)
    assert sum(base["outputs"]["y"]["classes"]) == 100
    mon = DriftMonitor(base, window_count=1000)
    for _ in range(1000):
        mon.observe({}, {"y": np.eye(k, dtype=np.float32)[[0]]})            # everything is class 0
    s = mon.summary()
    assert s["tensors"]["y"]["class_shift"] == pytest.approx(0.98)
    assert not any("class_shift" in a["metrics"] for a in s["alerts"])      # baseline too thin to judge


def test_smoothing_keeps_an_empty_bin_finite():
    assert psi([100] * 16, [0] + [7] * 15) < 0.25                           # one empty bin in a short window
    assert psi([100] * 16, [0] * 8 + [20] * 8) > 0.5                         # half the bins empty: drift


def test_sequence_never_repeats_when_the_disk_is_full(tmp_path):
    box = Outbox(tmp_path / "o.db", max_db_pages=8, max_bytes=10 ** 9, max_messages=10 ** 9)
    seqs = [box.add("t", lambda s: b"z" * 4000) for _ in range(40)]
    assert seqs == list(range(1, 41))                                       # distinct even after writes fail
    st = box.stats()
    assert st["write_errors"] > 0 and "full" in st["last_error"] and 0 < st["queued"] < 40


def test_add_builds_the_payload_with_its_sequence_number(tmp_path):
    box = Outbox(tmp_path / "o.db")
    for _ in range(3):
        box.add("t/x", lambda s: f'{{"seq": {s}}}'.encode(), 1, False)
    assert [(s, p) for s, _, p, _, _ in box.pending()] == [(1, b'{"seq": 1}'), (2, b'{"seq": 2}'), (3, b'{"seq": 3}')]
    box.close()
    assert Outbox(tmp_path / "o.db").add("t/x", lambda s: b"") == 4          # persisted across a reopen


def test_unusable_outbox_path_falls_back_to_memory(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    box = Outbox(tmp_path / "file" / "o.db")
    assert box.in_memory and "cannot open outbox" in box.last_error and box.write_errors == 1
    assert box.add("t", lambda s: b"m") == 1 and len(box) == 1             # still queues, in memory
