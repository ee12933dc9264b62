"""HTTP/1.1 on one connection, stdlib only: a request head read within a deadline and parsed strictly, a body
read into one preallocated buffer within its own deadline, JSON answers, and a lingering close (unread input
is drained before the socket closes, so the client sees the answer rather than a reset).

``HttpError(status, message)`` is any answer decided while reading; ``Closed`` means the peer went away or
stayed silent (nothing to answer).
"""
from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass

MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP/(\d)\.(\d)")
_HEADER = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([\x20-\x7e\x80-\xff\t]*?)[ \t]*")
_END = re.compile(rb"\r?\n\r?\n")
REASONS = {100: "Continue", 200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
           415: "Unsupported Media Type", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported"}


class Closed(Exception):
    """The peer closed, reset, or sent nothing before the deadline: no answer is due."""


class HttpError(Exception):
    """An answer decided while reading: ``status`` and a JSON ``{"error": message, **extra}``."""

    def __init__(self, status: int, message: str, *, close: bool = True, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.close, self.headers = status, close, headers or {}
        self.body = {"error": message, **extra}


@dataclass
class Request:
    method: str
    path: str
    version: tuple[int, int]
    headers: dict[str, str]          # lower-case names; repeated headers joined with ", "

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        return "close" not in conn if self.version >= (1, 1) else "keep-alive" in conn


def parse_head(head: bytes) -> Request:
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    m = _REQUEST_LINE.fullmatch(lines[0])
    if not m:
        raise HttpError(400, f"malformed request line {lines[0][:80]!r}; expected 'METHOD /path HTTP/1.1'")
    if (m[3], m[4]) not in (("1", "0"), ("1", "1")):
        raise HttpError(505, f"HTTP/{m[3]}.{m[4]} is not supported; use HTTP/1.1")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        h = _HEADER.fullmatch(line)
        if not h:
            raise HttpError(400, f"malformed header line {line[:80]!r}; expected 'Name: value'")
        name = h[1].lower()
        headers[name] = f"{headers[name]}, {h[2]}" if name in headers else h[2]
    return Request(m[1], m[2].split("?", 1)[0], (int(m[3]), int(m[4])), headers)


class Conn:
    """One client socket with a read buffer; every read waits at most until its deadline."""

    def __init__(self, sock: socket.socket, send_timeout: float):
        self.sock, self.buf, self.send_timeout = sock, bytearray(), send_timeout

    def _recv_into(self, view, deadline: float) -> int:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            n = self.sock.recv_into(view)
        except socket.timeout:
            raise TimeoutError from None
        except OSError:
            raise Closed from None
        if n == 0:
            raise Closed
        return n

    def wait_request(self, deadline: float) -> None:
        """Block until the next request's first byte (else Closed: idle timeout, peer closed)."""
        chunk = bytearray(65536)
        while not self.buf.lstrip(b"\r\n"):
            try:
                n = self._recv_into(chunk, deadline)
            except TimeoutError:
                raise Closed from None
            self.buf += chunk[:n]

    def read_head(self, deadline: float) -> bytes:
        chunk = bytearray(65536)
        while True:
            del self.buf[:len(self.buf) - len(self.buf.lstrip(b"\r\n"))]    # empty lines before a request
            m = _END.search(self.buf, 0, MAX_HEAD + 4)
            if m:
                head = bytes(self.buf[:m.start()])
                del self.buf[:m.end()]
                return head
            if len(self.buf) > MAX_HEAD:
                raise HttpError(431, f"request head exceeds {MAX_HEAD} bytes")
            try:
                n = self._recv_into(chunk, deadline)
            except TimeoutError:
                raise HttpError(408, "request head not received in time") from None
            self.buf += chunk[:n]

    def read_body(self, length: int, deadline: float, keep: bool = True) -> bytearray | None:
        """``length`` bytes in one buffer (or discarded in chunks when ``keep`` is false)."""
        body = bytearray(length if keep else 65536)
        view, have = memoryview(body), min(len(self.buf), length)
        if keep:
            view[:have] = self.buf[:have]
        del self.buf[:have]
        while have < length:
            try:
                n = self._recv_into(view[have:] if keep else view[:min(65536, length - have)], deadline)
            except TimeoutError:
                raise HttpError(408, f"request body not received in time ({have} of {length} bytes)") from None
            have += n
        return body if keep else None

    def send(self, status: int, body: dict | None, *, close: bool, headers: dict | None = None,
             head_only: bool = False) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", "Content-Type: application/json",
                 f"Content-Length: {len(data)}", f"Connection: {'close' if close else 'keep-alive'}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.settimeout(self.send_timeout)
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else data))
        except OSError:
            raise Closed from None

    def send_continue(self) -> None:
        self.sock.settimeout(self.send_timeout)
        try:
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        except OSError:
            raise Closed from None

    def close(self, linger: float = 1.0) -> None:
        """Half-close, drain what the client still sends (up to ``linger`` seconds), then close."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline, chunk = time.monotonic() + linger, bytearray(65536)
            while self._recv_into(chunk, deadline):
                pass
        except (OSError, Closed, TimeoutError):
            pass
        finally:
            self.sock.close()
