"""Property test of the receiver's request window: whatever happens (arrivals, refusals, reconnects, timeouts,
requests that cannot be sent), at most ``size`` chunks are outstanding, a held or outstanding chunk is never
asked for again, and once every chunk has arrived nothing more is asked for."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgepack_runtime.ota.window import Window

ops = st.lists(st.tuples(st.sampled_from(["ask", "arrive", "refuse", "reconnect", "wait", "unsent"]),
                         st.integers(0, 10 ** 6)), max_size=120)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 16), ops)
def test_the_window_never_overflows_nor_asks_for_what_it_has(chunks, size, script):
    now = [0.0]
    w = Window(size, timeout=5.0, max_timeout=30.0, clock=lambda: now[0])
    held, cursor = set(), [0]

    def fresh():
        while cursor[0] < chunks:
            cursor[0] += 1
            if cursor[0] - 1 not in held:
                return cursor[0] - 1
        return None

    for op, n in script:
        if op in ("ask", "unsent"):
            want = w.choose(held.__contains__, fresh)
            assert len(set(want)) == len(want) and not set(want) & held and not set(want) & set(w.outstanding)
            (w.asked if op == "ask" else w.unsent)(want)
        elif op in ("arrive", "refuse") and w.outstanding:
            i = sorted(w.outstanding)[n % len(w.outstanding)]
            if op == "arrive":
                held.add(i)
                w.arrived(i)
            else:
                w.lost(i)
        elif op == "reconnect":
            w.lost_all()
        elif op == "wait":
            now[0] += n % 40
            w.overdue()
        assert len(w.outstanding) <= size and not held & set(w.outstanding)
        assert w.base_timeout <= w.timeout <= w.max_timeout
    for _ in range(chunks + 1):                      # the rest arrives: the download completes
        want = w.choose(held.__contains__, fresh)
        w.asked(want)
        for i in list(w.outstanding):
            held.add(i)
            w.arrived(i)
    assert held == set(range(chunks)) and w.choose(held.__contains__, fresh) == []
