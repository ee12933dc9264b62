"""The agent's side of OTA: open the state folder before the agent starts, then wire the Updater to it.

``open_updater(conf)`` recovers the state folder (finishing or undoing an interrupted update, installing
``inbox/``), seeds it with ``--bundle`` when nothing is installed yet, and returns the bundle to serve.
``attach(agent, updater, conf)`` makes ``agent.updater`` the updater, has every switch hot-swap the agent's
Runtime (``Agent.swap_runtime``: calls in flight finish on the old one), publishes each update state on
``ota/status`` (retained), and hands an MQTT link to the flash receiver (``ota/transfer.py``) when there is one.
A supervised thread (``edgepack-ota-watch``) follows what other processes do to the folder: a switch made by
``edgepack-device install`` (e.g. over ssh) is served within a second, and a bundle dropped into ``inbox/``
is installed without a restart.
"""
from __future__ import annotations

import threading
from pathlib import Path

from ..errors import EdgepackError
from .errors import OtaError


def open_updater(conf: dict):
    """``(Updater, path of the bundle to serve)`` for the agent settings ``conf`` (``state_dir`` set)."""
    from .updater import Updater
    wiring = _Wiring(conf)
    updater = Updater(conf["state_dir"], trust_keys=conf.get("trust_keys") or (), profile=conf.get("profile"),
                      health_budget_ms=conf.get("health_budget_ms"), backend=conf.get("backend"),
                      on_status=wiring.status, on_switch=wiring.switch)
    updater.wiring = wiring
    updater.recover()
    if updater.active() is None and conf.get("bundle"):
        st = updater.install(Path(conf["bundle"]), update_id="seed")
        if st["state"] != "committed":
            raise OtaError(f"the first install of {conf['bundle']} failed: {st['reason']}",
                           hint="check the bundle with `edgepack-device check`")
    path = updater.active()
    if path is None:
        why = updater.status().get("reason")
        raise EdgepackError(f"state folder {conf['state_dir']} has no model to serve" + (f" ({why})" if why else ""),
                            hint="pass --bundle PATH for the first install, or drop a bundle into its inbox/")
    return updater, path


def attach(agent, updater, conf: dict) -> None:
    """Bind ``updater`` to a built (not yet started) ``agent``; see the module docstring."""
    agent.updater = updater
    updater.wiring.agent = agent
    updater.wiring.served = identity(updater.active())
    agent.supervisor.spawn("edgepack-ota-watch", lambda: _watch(agent, updater), agent._stop)
    sink = agent.sink
    if sink is not None and hasattr(sink, "route"):
        try:
            from .transfer import attach as attach_flash
        except ImportError:
            return
        attach_flash(agent, sink, updater, profile=conf.get("profile"))


WATCH_SECONDS = 1.0


def identity(path: Path | None):
    """What tells one installed bundle from another: its path (slot) and its file's inode and mtime."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (str(path), st.st_ino, st.st_mtime_ns)


def _watch(agent, updater) -> None:
    """Follow changes made by other processes (``edgepack-device install`` over ssh, a rollback): when
    ``slots/active`` points at another bundle than the one served, swap to it; install what lands in inbox/."""
    while not agent._stop.wait(WATCH_SECONDS):
        agent.supervisor.beat()
        if updater.inbox_waiting():
            updater.process_inbox()
        current = updater.active()
        if current is not None and identity(current) != updater.wiring.served:
            updater.wiring.switch(current)


class _Wiring:
    """Callbacks the Updater is built with before the agent exists; they act once ``agent`` is set."""

    def __init__(self, conf: dict):
        self.conf, self.agent, self.served = conf, None, None
        self._lock = threading.Lock()

    def switch(self, path: Path) -> None:
        if self.agent is None:                     # at start: the agent will open the active slot itself
            return
        from ..runtime import Runtime
        from ..signing import open_verified
        with self._lock:                           # the updater and the watcher may both ask
            ident = identity(path)
            if ident == self.served:
                return
            bundle = open_verified(path, self.conf.get("trust_keys") or ())[0]
            self.agent.swap_runtime(Runtime.open(bundle, backend=self.conf.get("backend"),
                                                 num_threads=self.conf.get("threads")))
            self.served = ident

    def status(self, st: dict) -> None:
        agent = self.agent
        if agent is not None and agent.sink is not None:
            agent.sink.publish("ota/status", st, retain=True)
