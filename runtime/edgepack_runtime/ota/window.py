"""Which chunks a download asks for next: flow control and loss recovery of the flash receiver.

At most ``size`` chunks are outstanding (asked for, not arrived). What was lost (a reconnect, a wrong hash,
a request that could not be sent) is asked for first, then the lowest chunks never asked for. A chunk
outstanding for ``timeout`` seconds is taken as lost; while nothing at all arrives, the timeout doubles up
to ``max_timeout`` (a sender that is gone is not flooded), and the first arrival resets it.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Callable


class Window:
    def __init__(self, size: int, timeout: float, max_timeout: float, clock: Callable[[], float] = time.monotonic):
        self.size, self.base_timeout, self.max_timeout, self.clock = size, timeout, max_timeout, clock
        self.timeout = timeout
        self.outstanding: dict[int, float] = {}       # index -> when it was asked for
        self.retry: deque[int] = deque()
        self.last_progress = clock()

    def __contains__(self, index: int) -> bool:
        return index in self.outstanding

    def arrived(self, index: int) -> None:
        self.outstanding.pop(index, None)
        self.last_progress, self.timeout = self.clock(), self.base_timeout

    def lost(self, index: int) -> None:
        """``index`` will not arrive (its copy was refused): ask for it first."""
        self.outstanding.pop(index, None)
        self.retry.append(index)

    def lost_all(self) -> None:
        """Nothing in flight will arrive (a reconnect): ask for all of it again, in order."""
        self.retry.extendleft(sorted(self.outstanding, reverse=True))
        self.outstanding.clear()

    def overdue(self) -> None:
        """Take chunks outstanding for ``timeout`` as lost; back off while nothing arrives."""
        now = self.clock()
        late = sorted(i for i, t in self.outstanding.items() if now - t >= self.timeout)
        if late:
            for i in late:
                del self.outstanding[i]
            self.retry.extend(late)
            if now - self.last_progress >= self.timeout:
                self.timeout = min(self.max_timeout, self.timeout * 2)

    def wants_more(self) -> bool:
        return len(self.outstanding) <= self.size // 2

    def choose(self, held: Callable[[int], bool], fresh: Callable[[], int | None]) -> list[int]:
        """Indices to ask for now: lost ones first, then ``fresh()`` ones, none ``held`` or outstanding."""
        want: list[int] = []
        while len(self.outstanding) + len(want) < self.size:
            index = self.retry.popleft() if self.retry else fresh()
            if index is None:
                break
            if not held(index) and index not in self.outstanding and index not in want:
                want.append(index)
        return want

    def asked(self, indices: list[int]) -> None:
        now = self.clock()
        for i in indices:
            self.outstanding[i] = now

    def unsent(self, indices: list[int]) -> None:
        """A request that could not be sent (link down): ask for these first when it is back."""
        self.retry.extendleft(reversed(indices))
