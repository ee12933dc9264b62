"""HTTP plumbing of the monitor's web view: where it may bind (``parse_bind``), whose ``Host`` it answers
(``loopback_host``), and writing answers and event streams on an ``edgepack_runtime.httpio.Conn``."""
from __future__ import annotations

import ipaddress
import json
import queue
import selectors
import socket
import threading
import time

from edgepack_runtime.httpio import Closed, Conn

from ..errors import EdgepackError

__all__ = ["HEAD_TIMEOUT", "Refuser", "head_bytes", "json_bytes", "loopback_host", "parse_bind", "send", "write"]

HEAD_TIMEOUT = 10.0          # seconds for a request head to arrive
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           503: "Service Unavailable", 505: "HTTP Version Not Supported"}
COMMON = ["Cache-Control: no-store", "X-Content-Type-Options: nosniff", "Referrer-Policy: no-referrer",
          "X-Frame-Options: DENY", "Connection: close"]
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def parse_bind(text: str) -> tuple[str, int, bool]:
    """``--web`` value -> (host, port, public). ``PORT`` and ``:PORT`` mean 127.0.0.1; loopback hosts are
    taken as given; ``0.0.0.0:PORT`` or ``[::]:PORT`` (all interfaces) must be written out and set ``public``;
    any other address is refused (EdgepackError saying what to write instead)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise EdgepackError(f"--web {text!r}: the port must be a number from 0 to 65535",
                            hint="write --web 127.0.0.1:8080 (or --web 8080)")
    if host in ("0.0.0.0", "::"):
        return host, int(port), True
    if host == "localhost":
        return "127.0.0.1", int(port), False
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise EdgepackError(f"--web {text!r}: the web view has no authentication, so it binds only to loopback",
                            hint="use --web 127.0.0.1:PORT and an SSH tunnel or a reverse proxy with auth; "
                                 "--web 0.0.0.0:PORT opens it to every network this machine is on")
    return host, int(port), False


def loopback_host(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine's loopback (no header: a local HTTP/1.0 tool)."""
    if not host:
        return True                                  # HTTP/1.0 without Host: only a local tool sends that
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def json_bytes(data) -> bytes:
    """Compact JSON (anything unknown as its ``str``)."""
    return json.dumps(data, separators=(",", ":"), default=str).encode()


def head_bytes(status: int, ctype: str, length: int | None, extra: list[str] | None = None) -> bytes:
    """A response head (``length`` None: a stream, ended by closing the connection)."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", f"Content-Type: {ctype}", *COMMON, *(extra or [])]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send(conn: Conn, status: int, ctype: str, body: bytes, head_only: bool = False,
         extra: list[str] | None = None) -> None:
    write(conn, head_bytes(status, ctype, len(body), extra) + (b"" if head_only else body))


def write(conn: Conn, data: bytes) -> None:
    conn.sock.settimeout(conn.send_timeout)
    try:
        conn.sock.sendall(data)
    except OSError:
        raise Closed from None


class Refuser:
    """Answers 503 to connections over the cap, on one thread: the answer is sent without blocking, the socket
    half-closed, and what the client still sends drained (up to ``linger`` seconds) before closing, so it reads
    the answer rather than a reset. At most ``limit`` linger at once; past that they are closed at once."""

    def __init__(self, *, linger: float = 1.0, limit: int = 64):
        self.linger, self.limit = linger, limit
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock, self._stop, self._pending = threading.Lock(), threading.Event(), 0
        self._thread = threading.Thread(target=self._run, name="edgepack-web-busy", daemon=True)

    def start(self) -> "Refuser":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def refuse(self, sock: socket.socket, why: str) -> None:
        body = json.dumps({"error": "busy", "detail": why}).encode()
        try:
            sock.setblocking(False)
            sock.send(head_bytes(503, "application/json", len(body), ["Retry-After: 1"]) + body)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        with self._lock:
            full = self._pending >= self.limit
            self._pending += 0 if full else 1
        if full:
            sock.close()
        else:
            self._queue.put((sock, time.monotonic() + self.linger))

    def _run(self) -> None:
        sel, deadlines = selectors.DefaultSelector(), {}
        while not (self._stop.is_set() and not deadlines and self._queue.empty()):
            while not self._queue.empty():
                sock, deadlines[sock] = self._queue.get()
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
                self._pending -= len(done)
            if not deadlines:
                self._stop.wait(0.02)
        sel.close()
