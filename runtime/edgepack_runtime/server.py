"""The agent's local HTTP API (loopback by default), stdlib only.

    POST /v1/infer    body: JSON {"inputs": {name: array}}, application/x-npy (one input) or application/x-npz
                      -> 200 {"outputs": {name: array}, "latency_ms": float}
                      400 {"error": ...} bad body or input (name, shape, dtype, nesting); 413 body too large;
                      503 {"error": "busy", "retry_after_ms": ms} + Retry-After when the queue, the byte budget
                      or the connection cap is full; 500 {"error": ...} when the backend fails
    GET  /v1/health   {"status": "ok"|"degraded", "model", "version", "backend", "queue", "mqtt_connected",
                       "outbox", "sink", "problems": [what is wrong with reporting, in words]}
    GET  /v1/metrics  the current telemetry period (not reset)

Every answer is JSON. A wrong method on an endpoint is 405 with ``Allow``; an unknown method 501.

One thread per connection, at most ``max_connections`` of them: at the cap, a connection idle for a second
or more is closed to make room, else the newcomer gets an immediate 503 from one rejecting thread (which
drains what the client sends before closing, so it reads an answer, not a reset). A deep listen backlog
keeps bursts waiting in the kernel instead of resetting; accept errors (out of descriptors) back off.
Timeouts: a request head within ``header_timeout`` of its first byte, a body within ``body_timeout``, and
``idle_timeout`` between keep-alive requests. Bodies are bounded as described in ``httpapi.py``.
"""
from __future__ import annotations

import json
import queue
import selectors
import socket
import threading
import time
from dataclasses import fields

from .agent import Agent
from .httpapi import Api, Limits
from .httpio import Conn

EVICT_IDLE_S = 1.0         # at the cap, a connection idle this long makes room for a new one
REJECTING = 64             # connections being answered 503 at once; past it, new ones wait in the backlog


class AgentServer:
    """Serve ``agent`` on ``host:port`` (port 0 picks a free one) in background threads.

    Keyword arguments are the ``Limits`` fields (``max_connections``, ``header_timeout``, ``body_timeout``,
    ``idle_timeout``, ``max_body``, ``body_budget``, ``retry_after_ms``)."""

    def __init__(self, agent: Agent, host: str = "127.0.0.1", port: int = 0, *, backlog: int = 1024, **limits):
        unknown = set(limits) - {f.name for f in fields(Limits)}
        if unknown:
            raise TypeError(f"unknown AgentServer limits {sorted(unknown)}")
        self.limits = Limits(**limits)
        self.api = Api(agent, self.limits)
        self.sock = socket.create_server((host, port), backlog=backlog)
        self.port = self.sock.getsockname()[1]
        self.accept_errors = 0
        self._conns: dict[socket.socket, float | None] = {}      # socket -> idle since (None: busy)
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._threads: list[threading.Thread] = []
        self._rejecting, self._to_reject = 0, queue.SimpleQueue()     # connections being answered 503
        busy = json.dumps({"error": "busy", "detail": f"{self.limits.max_connections} connections are open",
                           "retry_after_ms": 2 * self.limits.retry_after_ms}).encode()
        self._busy = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
                      f"{len(busy)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n").encode() + busy
        self._accepter = self._rejecter = None

    def start(self) -> "AgentServer":
        """Accept and reject in threads supervised like the agent's own: restarted after any error, listed in
        ``/v1/health``."""
        sup = self.api.agent.supervisor
        self._accepter = sup.spawn("edgepack-http", self._accept_loop, self._stop)
        self._rejecter = sup.spawn("edgepack-http-busy", self._reject_loop, self._stop)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in (self._accepter, self._rejecter):
            if t is not None:
                t.join(5)
        self.sock.close()
        with self._lock:
            socks = list(self._conns)
        for s in socks:
            _shutdown(s)
        deadline = time.monotonic() + 2
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # accepting ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            self.api.agent.supervisor.beat()
            if self._rejecting >= REJECTING:
                time.sleep(0.01)
                continue
            try:
                sock, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:              # EMFILE, ENFILE, ENOBUFS...: back off instead of spinning
                self.accept_errors += 1
                self._stop.wait(0.05)
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._admit(sock)

    def _admit(self, sock: socket.socket) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._conns) >= self.limits.max_connections:
                idle = [(since, s) for s, since in self._conns.items() if since is not None]
                since, victim = min(idle, key=lambda p: p[0], default=(None, None))
                if victim is None or now - since < EVICT_IDLE_S:
                    return self._reject(sock)
                del self._conns[victim]
                _shutdown(victim)        # its thread sees the close and exits
            self._conns[sock] = now
        t = threading.Thread(target=self._serve, args=(sock,), name="edgepack-http-conn", daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            self.api.serve(Conn(sock, send_timeout=self.limits.body_timeout), lambda idle: self._mark(sock, idle))
        finally:
            with self._lock:
                self._conns.pop(sock, None)

    def _mark(self, sock: socket.socket, idle: bool) -> None:
        with self._lock:
            if sock in self._conns:
                self._conns[sock] = time.monotonic() if idle else None

    # over the cap: answer 503 at once, drain, close --------------------------------------
    def _reject(self, sock: socket.socket) -> None:
        self.api.agent.telemetry.busy()
        try:
            sock.setblocking(False)
            sock.send(self._busy)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        self._rejecting += 1
        self._to_reject.put((sock, time.monotonic() + 1.0))

    def _reject_loop(self) -> None:
        sel, deadlines = selectors.DefaultSelector(), {}
        while not (self._stop.is_set() and not deadlines and self._to_reject.empty()):
            self.api.agent.supervisor.beat()
            while not self._to_reject.empty():
                sock, deadlines[sock] = self._to_reject.get()
                sel.register(sock, selectors.EVENT_READ)
            done = set()
            for key, _ in (sel.select(0.05) if deadlines else ()):
                try:
                    if not key.fileobj.recv(65536):
                        done.add(key.fileobj)
                except OSError:
                    done.add(key.fileobj)
            now = time.monotonic()
            done |= {s for s, d in deadlines.items() if d < now or self._stop.is_set()}
            for s in done:
                sel.unregister(s)
                s.close()
                del deadlines[s]
            with self._lock:
                self._rejecting -= len(done)
            if not deadlines:
                self._stop.wait(0.02)
        sel.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
