"""The on-disk outbox (bounds, policies, full disk, persistence) and the telemetry counters."""
import numpy as np
import pytest

from edgepack_runtime.metrics import LatencyHistogram, Telemetry
from edgepack_runtime.outbox import Outbox


def test_order_ack_and_sequence_survive_a_restart(tmp_path):
    box = Outbox(tmp_path / "o.db")
    seqs = [box.next_seq() for _ in range(3)]
    for s in seqs:
        assert box.put(s, "t", f"m{s}".encode())
    box.ack(seqs[0])
    box.close()
    box = Outbox(tmp_path / "o.db")                      # a reboot
    assert [p[0] for p in box.pending()] == seqs[1:]
    assert box.next_seq() == 4


@pytest.mark.parametrize("policy,kept", [("drop-oldest", [3, 4, 5]), ("drop-newest", [1, 2, 3])])
def test_bound_and_policy(tmp_path, policy, kept):
    box = Outbox(tmp_path / "o.db", max_messages=3, policy=policy)
    results = [box.put(box.next_seq(), "t", b"x") for _ in range(5)]
    assert [p[0] for p in box.pending()] == kept
    assert box.stats()["dropped"] == 2
    assert results == ([True] * 5 if policy == "drop-oldest" else [True, True, True, False, False])


def test_full_disk_is_counted_not_raised(tmp_path):
    box = Outbox(tmp_path / "o.db", max_db_pages=8, max_bytes=10 ** 9, max_messages=10 ** 9)
    ok = [box.put(box.next_seq(), "t", b"y" * 4000) for _ in range(50)]
    assert ok[0] and not all(ok)
    st = box.stats()
    assert st["write_errors"] > 0 and "full" in st["last_error"]


def test_histogram_quantiles_within_bucket_width():
    h = LatencyHistogram()
    values = np.random.default_rng(0).lognormal(mean=np.log(0.002), sigma=0.5, size=20000)
    for v in values:
        h.add(float(v))
    for q in (0.5, 0.95, 0.99):
        assert h.quantile(q) == pytest.approx(np.quantile(values, q), rel=0.06)


def test_telemetry_snapshot_and_reset():
    now = [0.0]
    t = Telemetry(backend="litert", bundle={"model": {"name": "m", "version": "3"}}, clock=lambda: now[0])
    for _ in range(10):
        t.record(0.001)
    t.error("InputError", input_error=True)
    t.cache(True)
    t.cache(False)
    now[0] = 2.0
    s = t.snapshot()
    assert s["calls"] == 10 and s["throughput_per_s"] == pytest.approx(5.0)
    assert s["latency_ms"]["p50"] == pytest.approx(1.0, rel=0.06)
    assert s["errors"] == {"InputError": 1} and s["input_errors"] == 1 and s["cache_hit_rate"] == 0.5
    assert s["backend"] == "litert" and s["model_version"] == "3" and s["rss_bytes"] > 10 ** 6
    assert t.snapshot()["calls"] == 0


def test_raw_sampler_is_rate_limited_and_size_capped(tmp_path):
    from edgepack_runtime.sampler import RawSampler
    now = [0.0]
    s = RawSampler(tmp_path / "s", per_minute=60, max_bytes=10 ** 9, clock=lambda: now[0])
    x, y = {"x": np.ones((2, 3), np.float32)}, {"y": np.zeros(4, np.float32)}
    assert s.offer(x, y) and not s.offer(x, y)          # one token, then the bucket is empty
    now[0] = 1.0
    assert s.offer(x, y)
    files = sorted((tmp_path / "s").glob("*.npz"))
    assert len(files) == 2 and np.load(files[0])["in_0"].shape == (2, 3)
    small = RawSampler(tmp_path / "t", per_minute=6000, max_bytes=2000, clock=lambda: now[0])
    kept = []
    for _ in range(5):
        now[0] += 1.0                                     # tokens are not the limit here: the size cap is
        kept.append(small.offer(x, y))
    assert kept[:3] == [True, True, True] and kept[3:] == [False, False] and small.stats()["skipped_full"] == 2
    assert sum(p.stat().st_size for p in (tmp_path / "t").glob("*.npz")) <= 2000
