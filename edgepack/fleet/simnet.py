"""Network faults for the fleet simulator: one loopback TCP relay per simulated device in front of the broker.

A device's MQTT link connects to its relay's port instead of the broker's. ``cut(device)`` closes the relay's
listening socket and every connection it carries: the broker sees the device's connection end without a
DISCONNECT (and publishes its last will), the device sees its connection drop and its reconnects refused,
so its agent keeps serving while telemetry waits in its outbox. ``restore(device)`` listens on the same port
again and the device's link reconnects (full-jitter backoff) and drains the outbox. One thread moves the
bytes of every relay; the other threads only post commands to it.
"""
from __future__ import annotations

import queue
import selectors
import socket
import threading


class FaultNet:
    """Relays for many devices: ``add(id) -> port``, ``cut(id)``, ``restore(id)``, ``stop()``."""

    def __init__(self, broker_host: str, broker_port: int):
        self.broker = (broker_host, broker_port)
        self._sel = selectors.DefaultSelector()
        self._cmds: queue.Queue = queue.Queue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._ports: dict[str, int] = {}
        self._listeners: dict[str, socket.socket] = {}
        self._pairs: dict[str, list[tuple[socket.socket, socket.socket]]] = {}
        self.counters = {"connections": 0, "cuts": 0, "upstream_failures": 0, "relay_errors": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgepack-sim-net", daemon=True)
        self._thread.start()

    # commands (any thread) -------------------------------------------------------------------
    def add(self, device: str) -> int:
        """Start a relay for ``device``; returns the loopback port its link should connect to."""
        return self._call(self._listen, device, 0)

    def cut(self, device: str) -> None:
        """Drop the device's connections and refuse new ones until ``restore``."""
        self._call(self._cut, device)

    def restore(self, device: str) -> None:
        self._call(lambda d: self._listen(d, self._ports[d]) if d not in self._listeners else None, device)

    def is_cut(self, device: str) -> bool:
        return device in self._ports and device not in self._listeners

    def stop(self) -> None:
        self._stop.set()
        self._wake_w.send(b"x")
        self._thread.join(5)
        for device in list(self._ports):
            self._cut(device, count=False)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def _call(self, fn, *args):
        done: queue.Queue = queue.Queue(maxsize=1)
        self._cmds.put((fn, args, done))
        self._wake_w.send(b"x")
        ok, value = done.get(timeout=10)
        if not ok:
            raise value
        return value

    # the relay thread ------------------------------------------------------------------------
    def _listen(self, device: str, port: int) -> int:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(16)
        s.setblocking(False)
        self._listeners[device], self._ports[device] = s, s.getsockname()[1]
        self._sel.register(s, selectors.EVENT_READ, ("listen", device))
        return self._ports[device]

    def _cut(self, device: str, count: bool = True) -> None:
        s = self._listeners.pop(device, None)
        if s is not None:
            self._unregister_close(s)
        for a, b in self._pairs.pop(device, []):
            self._unregister_close(a)
            self._unregister_close(b)
        if count:
            self.counters["cuts"] += 1

    def _unregister_close(self, s: socket.socket) -> None:
        try:
            self._sel.unregister(s)
        except (KeyError, ValueError):
            pass
        try:
            s.close()
        except OSError:
            pass

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.5):
                kind, data = key.data
                if kind == "wake":
                    self._run_commands()
                elif kind == "listen":
                    self._accept(key.fileobj, data)
                else:
                    self._relay(key.fileobj, *data)

    def _run_commands(self) -> None:
        try:
            self._wake_r.recv(4096)
        except BlockingIOError:
            pass
        while True:
            try:
                fn, args, done = self._cmds.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((True, fn(*args)))
            except Exception as exc:  # noqa: BLE001  (handed to the caller)
                done.put((False, exc))

    def _accept(self, listener: socket.socket, device: str) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(self.broker, timeout=2)
        except OSError:
            self.counters["upstream_failures"] += 1
            client.close()
            return
        for s in (client, upstream):
            s.settimeout(1.0)          # a send that cannot finish in 1 s drops the connection, not the relay
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pairs.setdefault(device, []).append((client, upstream))
        self._sel.register(client, selectors.EVENT_READ, ("relay", (upstream, device)))
        self._sel.register(upstream, selectors.EVENT_READ, ("relay", (client, device)))
        self.counters["connections"] += 1

    def _relay(self, src: socket.socket, dst: socket.socket, device: str) -> None:
        try:
            data = src.recv(65536)
            if data:
                dst.sendall(data)
                return
        except OSError:
            self.counters["relay_errors"] += 1
        pairs = self._pairs.get(device, [])
        for pair in [p for p in pairs if src in p]:
            pairs.remove(pair)
        self._unregister_close(src)
        self._unregister_close(dst)
