"""Crashes and network cuts of simulated devices (the ``Simulator``'s fault half; see ``simulate.py``).

A crash ends the device's connection at the relay first (``simnet.FaultNet``: the broker sees no DISCONNECT
and publishes the retained last will), then stops the agent's threads without its goodbye: no last
telemetry, no ``offline`` of its own. A cut only drops the connection and refuses new ones; the agent keeps
serving and queues its messages in its outbox. The fault loop draws both per device and tick (rates per
minute) and brings devices back when their downtime is over, also those crashed or cut by hand.
"""
from __future__ import annotations

import queue
import time

import numpy as np

from ..errors import EdgepackError


class Faults:
    """Mixed into ``Simulator``: needs ``settings``, ``net``, ``devices``, ``device(id)``, ``counters``,
    ``_stop``, ``_boot(dev)``."""

    def crash(self, device_id: str, downtime: float | None = None) -> None:
        """Stop ``device_id`` without a goodbye: its connection ends, the broker sends its last will."""
        dev = self.device(device_id)
        if self.net is None:
            raise EdgepackError("crashes need the fault relay: set crash_rate > 0 or relay=True")
        with dev.lock:
            agent, dev.agent = dev.agent, None
            if agent is None:
                return
            dev.state = "crashing"
        self.net.cut(dev.id)                   # the connection just ends: no DISCONNECT, no offline from the device
        link, agent.sink = agent.sink, None     # the agent's threads stop with no last telemetry (a crash)
        agent.stop()
        fail_queued(agent, "the simulated device crashed")
        link.stop()
        link.outbox.close()
        self.counters["crashes"] += 1
        dev.until, dev.state = time.monotonic() + (downtime or self.settings.crash_downtime), "crashed"

    def restart(self, device_id: str) -> None:
        """Boot a crashed device again (same outbox: what it had queued goes out now)."""
        dev = self.device(device_id)
        self.net.restore(dev.id)
        with dev.lock:
            self._boot(dev)
        self.counters["restarts"] += 1

    def cut(self, device_id: str, seconds: float | None = None) -> None:
        """Cut ``device_id``'s network for ``seconds`` (the fault loop, or ``restore``, reconnects it)."""
        dev = self.device(device_id)
        if self.net is None:
            raise EdgepackError("network cuts need the fault relay: set network_cuts > 0 or relay=True")
        if dev.state != "up":
            raise EdgepackError(f"simulated device {device_id} is {dev.state}: only a running device can be cut")
        self.net.cut(dev.id)
        dev.until, dev.state = time.monotonic() + (seconds or self.settings.cut_seconds), "cut"
        self.counters["cuts"] += 1

    def restore(self, device_id: str) -> None:
        dev = self.device(device_id)
        self.net.restore(dev.id)
        dev.state = "up"
        self.counters["restores"] += 1

    # faults ----------------------------------------------------------------------------
    def _fault_loop(self) -> None:
        s, tick = self.settings, 0.2
        rng = np.random.default_rng([s.seed, 1 << 30])
        while not self._stop.wait(tick):
            now = time.monotonic()
            for dev in self.devices:
                if dev.state == "up":
                    if rng.random() < s.crash_rate / 60 * tick:
                        self.crash(dev.id)
                    elif rng.random() < s.network_cuts / 60 * tick:
                        self.cut(dev.id)
                elif dev.state == "crashed" and now >= dev.until:
                    self.restart(dev.id)
                elif dev.state == "cut" and now >= dev.until:
                    self.restore(dev.id)
                if self._stop.is_set():
                    return


def fail_queued(agent, why: str) -> None:
    """Answer the requests a stopped agent's worker will never take (their callers would wait for a timeout)."""
    from edgepack_runtime.errors import BackendError
    while True:
        try:
            _, fut = agent.requests.get_nowait()
        except queue.Empty:
            return
        if not fut.done():
            fut.set_exception(BackendError(why))
