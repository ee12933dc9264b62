"""The endpoints of the agent's local HTTP API and the request loop of one connection (see ``server.py``).

Admission of ``POST /v1/infer``, in this order, so that memory is bounded before it is spent:
Content-Length <= ``max_body`` (else 413, body unread) -> the body's bytes fit the byte budget (else 503,
body drained unstored) -> body read within ``body_timeout`` -> decoding's cost (``httpbody.extra_cost``)
fits the budget (413 if it never could, else 503) -> an inference slot is free (else 503) -> decode -> queue.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from . import httpbody, wire
from .agent import Busy
from .errors import InputError
from .httpio import Closed, Conn, HttpError, Request, parse_head

MiB = 2 ** 20
ROUTES = {"/v1/infer": ("POST",), "/v1/health": ("GET", "HEAD"), "/v1/metrics": ("GET", "HEAD")}
KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}


@dataclass
class Limits:
    """Defaults of the agent's ``http_*`` settings (seconds and bytes)."""
    max_connections: int = 128
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 5.0
    max_body: int = 16 * MiB
    body_budget: int = 128 * MiB
    retry_after_ms: int = 50


class Budget:
    """Bytes of request bodies (and of their decoding) in flight across connections."""

    def __init__(self, total: int):
        self.total, self.used, self._lock = total, 0, threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if self.used + n > self.total:
                return False
            self.used += n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self.used -= n


def content_length(req: Request) -> int:
    if "transfer-encoding" in req.headers:
        raise HttpError(411, "chunked bodies are not accepted; send a Content-Length header")
    values = {v.strip() for v in req.headers.get("content-length", "0").split(",")}
    if len(values) != 1 or not all(v.isdigit() and v.isascii() and len(v) < 19 for v in values):
        raise HttpError(400, f"bad Content-Length {req.headers['content-length'][:40]!r}; send one byte count")
    return int(values.pop())


class Api:
    def __init__(self, agent, limits: Limits):
        self.agent, self.limits, self.budget = agent, limits, Budget(limits.body_budget)
        self.slots = threading.BoundedSemaphore(agent.requests.maxsize + agent.max_batch)
        self.internal_errors = 0

    def busy(self, why: str, *, close: bool = False, counted: bool = False) -> HttpError:
        if not counted:
            self.agent.telemetry.busy()
        ms = self.limits.retry_after_ms
        return HttpError(503, "busy", close=close, detail=why, retry_after_ms=ms,
                         headers={"Retry-After": str(max(1, round(ms / 1000)))})

    def serve(self, conn: Conn, idle) -> None:
        """Answer requests on ``conn`` until it closes; ``idle(True/False)`` marks the wait between requests."""
        lim = self.limits
        try:
            while True:
                idle(True)
                conn.wait_request(time.monotonic() + lim.idle_timeout)
                idle(False)
                req = None
                try:
                    req = parse_head(conn.read_head(time.monotonic() + lim.header_timeout))
                    keep = self.answer(conn, req) and req.keep_alive
                except HttpError as exc:
                    keep = not exc.close and req is not None and req.keep_alive
                    conn.send(exc.status, exc.body, close=not keep, headers=exc.headers,
                              head_only=req is not None and req.method == "HEAD")
                if not keep:
                    return
        except Closed:
            pass
        except Exception as exc:        # a bug: say so in JSON, close, keep serving other connections
            self.internal_errors += 1
            try:
                conn.send(500, {"error": f"internal error: {type(exc).__name__}: {exc}"}, close=True)
            except Closed:
                pass
        finally:
            conn.close()

    def answer(self, conn: Conn, req: Request) -> bool:
        """Answer one request; False when the connection must close after it."""
        allowed = ROUTES.get(req.path)
        if req.method not in KNOWN_METHODS:
            raise HttpError(501, f"method {req.method[:20]} is not implemented; use GET or POST")
        if allowed is None or req.method not in allowed:
            self._skip_body(conn, req)
            if allowed is None:
                raise HttpError(404, f"no such endpoint {req.path[:100]}; use POST /v1/infer, GET /v1/health, "
                                "GET /v1/metrics", close=False)
            raise HttpError(405, f"{req.method} is not allowed on {req.path}; use {' or '.join(allowed)}",
                            close=False, headers={"Allow": ", ".join(allowed)})
        if req.path == "/v1/infer":
            return self.infer(conn, req)
        self._skip_body(conn, req)
        body = self.agent.health() if req.path == "/v1/health" else self.agent.telemetry.snapshot(reset=False)
        conn.send(200, body, close=not req.keep_alive, head_only=req.method == "HEAD")
        return True

    def _skip_body(self, conn: Conn, req: Request) -> None:
        n = content_length(req)
        if n > self.limits.max_body:
            raise HttpError(413, f"request body of {n} bytes exceeds {self.limits.max_body}")
        conn.read_body(n, time.monotonic() + self.limits.body_timeout, keep=False)

    def infer(self, conn: Conn, req: Request) -> bool:
        lim, n = self.limits, content_length(req)
        media = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if n > lim.max_body:
            raise HttpError(413, f"request body of {n} bytes exceeds {lim.max_body} (the agent's http_max_body_mb)",
                            hint=httpbody.HINT)
        expects = req.headers.get("expect", "").lower() == "100-continue"
        if not self.budget.take(n):
            if not expects:
                conn.read_body(n, time.monotonic() + lim.body_timeout, keep=False)
            raise self.busy("request bodies in flight fill the byte budget", close=expects)
        taken = n
        try:
            if expects:
                conn.send_continue()
            body = conn.read_body(n, time.monotonic() + lim.body_timeout)
            extra = httpbody.extra_cost(body, media)
            if n + extra > lim.body_budget:
                raise HttpError(413, f"decoding this body needs about {n + extra} bytes, more than the budget of "
                                f"{lim.body_budget}; {httpbody.HINT}", close=False)
            if not self.budget.take(extra):
                raise self.busy("request bodies in flight fill the byte budget")
            taken += extra
            if not self.slots.acquire(blocking=False):
                raise self.busy(f"{self.slots._initial_value} requests are queued or running")
            try:
                try:
                    inputs = httpbody.decode_body(body, media, self.agent.rt.inputs)
                except InputError:
                    self.agent.telemetry.error("InputError", input_error=True)
                    raise
                del body
                t0 = time.perf_counter()
                out = self.agent.infer(inputs)
                latency = (time.perf_counter() - t0) * 1e3
            finally:
                self.slots.release()
        except Busy as exc:
            raise self.busy(str(exc), counted=True) from None
        except InputError as exc:
            raise HttpError(400, str(exc), close=False) from None
        except (HttpError, Closed):
            raise
        except Exception as exc:      # the backend failed: 500, the server keeps serving
            raise HttpError(500, f"{type(exc).__name__}: {exc}", close=False) from None
        finally:
            self.budget.give(taken)
        conn.send(200, {"outputs": {k: wire.encode(v) for k, v in out.items()}, "latency_ms": latency},
                  close=not req.keep_alive)
        return True
