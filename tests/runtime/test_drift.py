"""Drift statistics: no false alarm on the baseline distribution, alerts on shifted inputs and class mixes."""
import numpy as np
import pytest

from edgepack_runtime.drift import DriftMonitor, Thresholds, compute_baseline, jensen_shannon, ks, merge_summaries, psi

RNG = np.random.default_rng(7)
W = RNG.standard_normal((8, 4))


def _sample(scale=1.0, offset=0.0, bias=None):
    x = (RNG.standard_normal((1, 8)) * scale + offset).astype(np.float32)
    logits = x @ W + (0 if bias is None else bias)
    return {"x": x}, {"y": logits.astype(np.float32)}


def _baseline(n=500):
    pairs = [_sample() for _ in range(n)]
    return compute_baseline([p[0] for p in pairs], [p[1] for p in pairs])


def test_baseline_shape_and_class_frequencies():
    b = _baseline()
    x, y = b["inputs"]["x"], b["outputs"]["y"]
    assert len(x["counts"]) == len(x["edges"]) + 1 == 16 and sum(x["counts"]) == 500 * 8
    assert abs(x["mean"]) < 0.05 and abs(x["std"] - 1) < 0.05
    assert "classes" in y and sum(y["classes"]) == 500 and "classes" not in x


def test_distances_are_zero_for_equal_and_grow_with_difference():
    a = [100, 200, 300, 400]
    assert psi(a, a) == pytest.approx(0, abs=1e-9) and jensen_shannon(a, a) == pytest.approx(0, abs=1e-9)
    assert ks(a, a) == pytest.approx(0, abs=1e-9)
    assert psi(a, [400, 300, 200, 100]) > psi(a, [110, 200, 300, 390]) > 0
    assert 0 < jensen_shannon(a, [400, 300, 200, 100]) <= 1
    assert ks(a, [1000, 0, 0, 0]) == pytest.approx(0.9, abs=1e-3)


def test_stream_from_the_baseline_distribution_raises_no_alert_over_a_long_window():
    mon = DriftMonitor(_baseline(), window_count=200)
    windows = 0
    for _ in range(4000):
        mon.observe(*_sample())
        if mon.window_full():
            summary = mon.summary()
            assert summary["alerts"] == [], summary["alerts"]
            windows += 1
    assert windows == 20


@pytest.mark.parametrize("kind,kwargs", [("scale", {"scale": 2.0}), ("offset", {"offset": 1.0}),
                                         ("classes", {"bias": np.array([4.0, 0, 0, 0])})])
def test_shifted_stream_alerts_within_one_window(kind, kwargs):
    mon = DriftMonitor(_baseline(), window_count=50, thresholds=Thresholds(min_samples=50))
    for _ in range(50):
        mon.observe(*_sample(**kwargs))
    assert mon.window_full()
    alerts = mon.summary()["alerts"]
    flagged = {(a["kind"], a["tensor"]) for a in alerts}
    if kind == "classes":
        assert any("class_shift" in a["metrics"] for a in alerts if a["tensor"] == "y")
    else:
        assert ("inputs", "x") in flagged


def test_time_window_and_mergeable_summaries():
    now = [0.0]
    base = _baseline()
    mons = [DriftMonitor(base, window_count=10 ** 9, window_seconds=60, clock=lambda: now[0]) for _ in range(2)]
    for m in mons:
        for _ in range(30):
            m.observe(*_sample())
    assert not mons[0].window_full()
    now[0] = 61.0
    assert mons[0].window_full()
    s = [m.summary() for m in mons]
    merged = merge_summaries(s)
    assert sum(merged["x"]) == 2 * 30 * 8
    assert merged["x"] == (np.asarray(s[0]["tensors"]["x"]["counts"]) + s[1]["tensors"]["x"]["counts"]).tolist()
