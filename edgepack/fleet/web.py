"""The monitor's web view, stdlib only (``edgepack_runtime.httpio`` reads the requests):

    GET /               the page, rendered on the server (filters in the query: fleet, model, sort, rows, plots)
    GET /api/snapshot   FleetState.snapshot() as JSON (same filters) plus the ingest's stats
    GET /api/series     ?device=&fleet=&metric=[&since=]: one device's points
    GET /events         server-sent events: a ``snapshot`` event (``webview.view()``) every ``interval`` seconds;
                        ``?events=N`` ends the stream after N with an ``end`` event (scripts, screenshots)

There is no authentication: bind to loopback (the default) unless the whole network may read the fleet.
Bounded: ``max_connections`` requests at once and ``max_streams`` event streams (more get 503), request heads
within a deadline, every write within ``send_timeout`` (a stalled client is dropped). On a loopback bind the
``Host`` header must name loopback too, so a web page elsewhere cannot read the fleet by DNS rebinding.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import replace
from urllib.parse import parse_qs

from edgepack_runtime.httpio import Closed, Conn, HttpError, parse_head

from .fleetstate import SERIES, SORT_KEYS
from .webassets import CSP
from .webhttp import HEAD_TIMEOUT, Refuser, head_bytes, json_bytes, loopback_host, parse_bind, send, write
from .webpage import error_page, render_page
from .webview import BadQuery, Query, view

__all__ = ["WebServer", "parse_bind"]

class WebServer:
    """``WebServer(state, stats=monitor.stats).start()``; ``.url``; ``.stop()``. ``defaults`` holds the CLI's
    filters (``--fleet``, ``--model``, ``--sort``); the URL's query overrides them per page."""

    def __init__(self, state, *, host: str = "127.0.0.1", port: int = 0, public: bool = False,
                 defaults: Query = Query(), stats=None, interval: float = 1.0, max_connections: int = 32,
                 max_streams: int = 8, send_timeout: float = 5.0, title: str = "edgepack monitor"):
        self.state, self.defaults, self.stats_fn, self.title = state, defaults, stats, title
        self.interval, self.max_connections, self.max_streams = interval, max_connections, max_streams
        self.send_timeout, self.public = send_timeout, public
        self.sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                         backlog=128)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.counts = {"requests": 0, "streams": 0, "refused": 0}
        self._active, self._streams = set(), 0
        self._views: dict[Query, tuple[float, str]] = {}      # query -> (when, view JSON): shared by the streams
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread: threading.Thread | None = None
        self._refuser = Refuser()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "WebServer":
        self._refuser.start()
        self._thread = threading.Thread(target=self._accept_loop, name="edgepack-web", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end the event streams, close every connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sock.close()
        self._refuser.stop()
        with self._lock:
            active = list(self._active)
        for sock in active:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # accepting ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                sock, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:                      # out of descriptors: back off instead of spinning
                self._stop.wait(0.05)
                continue
            with self._lock:
                full = len(self._active) >= self.max_connections
                if not full:
                    self._active.add(sock)
            if full:
                self.counts["refused"] += 1
                self._refuser.refuse(sock, f"{self.max_connections} connections are open")
                continue
            threading.Thread(target=self._serve, args=(sock,), name="edgepack-web-conn", daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        conn = Conn(sock, send_timeout=self.send_timeout)
        try:
            conn.wait_request(time.monotonic() + HEAD_TIMEOUT)
            head = conn.read_head(time.monotonic() + HEAD_TIMEOUT)
            req = parse_head(head)
            target = head.split(b"\n", 1)[0].split(b" ")[1].decode("latin-1")
            self.counts["requests"] += 1
            self._route(conn, req, target.partition("?")[2])
        except HttpError as exc:
            send(conn, exc.status, "application/json", json.dumps(exc.body).encode(),
                  extra=[f"{k}: {v}" for k, v in exc.headers.items()])
        except Closed:
            pass
        finally:
            with self._lock:
                self._active.discard(sock)
            conn.close(linger=0.2)

    # routing -----------------------------------------------------------------------------
    def _route(self, conn: Conn, req, query: str) -> None:
        if req.method not in ("GET", "HEAD"):
            raise HttpError(405, f"{req.method} is not allowed here; the monitor is read-only (GET)",
                            headers={"Allow": "GET, HEAD"})
        if not self.public and not loopback_host(req.headers.get("host")):
            raise HttpError(403, "this monitor answers only to loopback host names (127.0.0.1, localhost, [::1])")
        head_only = req.method == "HEAD"
        try:
            q = self.defaults.parse(query, SORT_KEYS)
        except BadQuery as exc:
            if req.path == "/":
                return send(conn, 400, "text/html; charset=utf-8", error_page(400, str(exc)).encode(), head_only)
            raise HttpError(400, str(exc)) from None
        if req.path == "/":
            return send(conn, 200, "text/html; charset=utf-8", self.page(q).encode(), head_only,
                         [f"Content-Security-Policy: {CSP}"])
        if req.path == "/api/snapshot":
            snap = dict(self.state.snapshot(fleet=q.fleet, model=q.model, sort=q.sort), stats=self._stats())
            return send(conn, 200, "application/json", json_bytes(snap), head_only)
        if req.path == "/api/series":
            return send(conn, 200, "application/json", json_bytes(self._series(query)), head_only)
        if req.path == "/events":
            return self._stream(conn, q, head_only)
        raise HttpError(404, f"no such page {req.path[:100]!r}; try /, /api/snapshot, /api/series or /events")

    def page(self, q: Query) -> str:
        """The HTML page for query ``q``."""
        everything = self.state.snapshot()["devices"]
        fleets = sorted({str(r["fleet"]) for r in everything})
        models = sorted({str(r["model"]) for r in everything if r.get("model") is not None})
        return render_page(view(self.state, q, stats=self._stats()), q, fleets=fleets, models=models,
                           sort_keys=SORT_KEYS, title=self.title)

    def _series(self, query: str) -> dict:
        p = {k: v[-1] for k, v in parse_qs(query, max_num_fields=20).items()}
        if not p.get("device") or p.get("metric") not in SERIES:
            raise HttpError(400, "give ?device=ID&metric=NAME[&fleet=F][&since=TS] with metric one of "
                                 + ", ".join(SERIES))
        try:
            since = float(p["since"]) if p.get("since") else None
        except ValueError:
            raise HttpError(400, f"since must be a Unix time in seconds, not {p['since'][:30]!r}") from None
        points = self.state.series(p["device"], p["metric"], since=since, fleet=p.get("fleet"))
        return {"device": p["device"], "fleet": p.get("fleet"), "metric": p["metric"], "points": points}

    def _view_json(self, q: Query) -> str:
        """The view as JSON, computed at most once per ``interval`` for each query however many pages watch it."""
        key, now = replace(q, events=None), time.monotonic()
        with self._lock:
            hit = self._views.get(key)
        if hit is not None and now - hit[0] < self.interval * 0.9:
            return hit[1]
        data = json.dumps(view(self.state, q, stats=self._stats()), separators=(",", ":"))
        with self._lock:
            if len(self._views) >= 64:
                self._views.clear()
            self._views[key] = (now, data)
        return data

    def _stats(self) -> dict | None:
        return self.stats_fn() if self.stats_fn else None

    # server-sent events --------------------------------------------------------------------
    def _stream(self, conn: Conn, q: Query, head_only: bool) -> None:
        with self._lock:
            full = self._streams >= self.max_streams
            self._streams += 0 if full else 1
        if full:
            self.counts["refused"] += 1
            raise HttpError(503, f"{self.max_streams} live pages are open; close one or reload later",
                            headers={"Retry-After": "5"})
        self.counts["streams"] += 1
        try:
            write(conn, head_bytes(200, "text/event-stream; charset=utf-8", None) + b"retry: 2000\n\n")
            sent = 0
            while not head_only and not self._stop.is_set():
                data = self._view_json(q)
                sent += 1
                write(conn, f"event: snapshot\nid: {sent}\ndata: {data}\n\n".encode())
                if q.events is not None and sent >= q.events:
                    write(conn, b"event: end\ndata: {}\n\n")
                    break
                if self._stop.wait(self.interval):
                    break
        finally:
            with self._lock:
                self._streams -= 1
