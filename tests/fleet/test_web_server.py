"""The web view's server without a browser: the page without JavaScript, filters from the query, errors
(400/403/404/405), the CSP pinning the inline script, bounded connections and event streams, clean stop."""
from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from edgepack.errors import EdgepackError
from edgepack.fleet.fleetstate import FleetState
from edgepack.fleet.web import WebServer, parse_bind
from edgepack.fleet.webview import Query

from .monitor_kit import feed, wait_until

EVIL = "<script>alert(1)<"


@pytest.fixture
def state():
    s = FleetState()
    feed(s, "lab", "cam-1", p50=1.0)
    feed(s, "lab", "cam-2", p50=5.0, model="other", psi=None)
    feed(s, "yard", EVIL, p50=3.0)
    return s


@pytest.fixture
def server(state):
    servers = []

    def make(**kw):
        srv = WebServer(state, interval=0.1, **kw).start()
        servers.append(srv)
        return srv
    yield make
    for srv in servers:
        srv.stop()


def _get(url, **headers):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


def _raw(port: int, request: bytes, *, read_all: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while read_all or b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_page_works_without_javascript(server):
    srv = server(stats=lambda: {"broker": "mqtt://127.0.0.1:1883", "connected": True})
    status, headers, html = _get(srv.url + "?sort=-p95_ms")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "3/3 devices online · 0 with drift alerts" in html and "broker mqtt://127.0.0.1:1883, connected" in html
    rows = re.findall(r'<tr class="online" data-key="([^"]*)"><td class="">([^<]*)</td>', html)
    assert rows == [("lab/cam-2", "cam-2"), ("yard/&lt;script&gt;alert(1)&lt;", "&lt;script&gt;alert(1)&lt;"),
                    ("lab/cam-1", "cam-1")]
    assert EVIL not in html and html.count("<script") == 1
    # server-drawn plots: latency (p50, p95: 3 points each) for every device, drift where windows arrived
    plots = re.findall(r'<svg class="plot (\w+)"[^>]*data-drawn-by="server">(.*?)</svg>', html)
    assert [k for k, _ in plots] == ["latency", "drift"] * 3
    assert [len(re.findall(r'<polyline class="line (p50|p95)" points="(?:[\d.]+,[\d.]+ ?){3}"', body))
            for k, body in plots if k == "latency"] == [2, 2, 2]
    assert "no drift windows yet" in plots[1][1] and 'class="limit"' in plots[3][1]
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html
    # the CSP lets exactly the page's own script and style run
    script = re.search(r"<script>(.*)</script>", html, re.S)[1]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"


def test_filters_from_the_query_and_the_defaults(server):
    srv = server(defaults=Query(fleet="lab"))
    html = _get(srv.url)[2]
    assert "cam-1" in html and "cam-2" in html and "alert(1)" not in html.split("<table")[1].split("</table>")[0]
    html = _get(srv.url + "?model=other")[2]
    assert re.findall(r'data-key="([^"]*)"><td', html) == ["lab/cam-2"]
    assert '<option value="yard">yard</option>' in html and '<option value="other" selected>' in html
    snap = json.loads(_get(srv.url + "api/snapshot?fleet=yard")[2])
    assert [r["device"] for r in snap["devices"]] == [EVIL] and snap["devices"][0]["p50_ms"] == 5.0
    series = json.loads(_get(srv.url + "api/series?" + "device=%3Cscript%3Ealert(1)%3C&metric=p95_ms&fleet=yard")[2])
    assert [p[1] for p in series["points"]] == [6.0, 8.0, 10.0]


@pytest.mark.parametrize("path, status, needle", [
    ("?sort=nope", 400, "cannot sort by &#x27;nope&#x27;"),
    ("api/snapshot?sort=%3Cb%3E", 400, "cannot sort by '<b>'"),
    ("?rows=-1", 400, "rows must be a whole number from 0 to 10000"),
    ("api/series?device=x&metric=nope", 400, "metric one of p50_ms"),
    ("api/series?device=cam-1&metric=p50_ms&since=soon", 400, "since must be a Unix time"),
    ("favicon.ico", 404, "no such page"),
])
def test_bad_requests_are_answered_clearly(server, path, status, needle):
    srv = server()
    code, _, body = _get(srv.url + path)
    assert code == status and needle in body


def test_methods_hosts_and_head(server):
    srv = server()
    answer = _raw(srv.port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, HEAD" in answer
    answer = _raw(srv.port, b"GET / HTTP/1.1\r\nHost: rebind.example:8080\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 ") and b"loopback host names" in answer
    for host in (b"localhost", f"127.0.0.1:{srv.port}".encode(), b"[::1]:1"):
        assert _raw(srv.port, b"GET /api/snapshot HTTP/1.1\r\nHost: " + host + b"\r\n\r\n").startswith(b"HTTP/1.1 200")
    head = _raw(srv.port, b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head)[1])
    assert head.endswith(b"\r\n\r\n") and length > 5000
    assert _raw(srv.port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_public_bind_answers_any_host(state):
    # bound to loopback for the test, but marked public (what --web 0.0.0.0:PORT does): no Host check
    srv = WebServer(state, public=True).start()
    try:
        assert _raw(srv.port, b"GET /api/snapshot HTTP/1.1\r\nHost: fleet.example\r\n\r\n").startswith(b"HTTP/1.1 200")
    finally:
        srv.stop()


def _open_stream(port: int, query: str = "") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET /events{query} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = b""
    while b"event: snapshot" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 200 ") and b"Content-Type: text/event-stream" in data
    return s


def test_event_streams_are_bounded_and_end_on_stop(server):
    srv = server(max_streams=1)
    first = _open_stream(srv.port)
    busy = _raw(srv.port, b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert busy.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 5" in busy and b"1 live pages are open" in busy
    first.close()                                        # the server notices at its next write
    assert wait_until(lambda: srv._streams == 0, 5)
    second = _open_stream(srv.port)
    srv.stop()
    second.settimeout(5)
    rest = b""
    while chunk := second.recv(65536):
        rest += chunk
    second.close()
    assert srv.counts["streams"] == 2 and srv.counts["refused"] == 1


def test_connections_are_bounded(server):
    srv = server(max_connections=2)
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(2)]
    try:
        assert wait_until(lambda: len(srv._active) == 2, 5)
        busy = _raw(srv.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert busy.startswith(b"HTTP/1.1 503 ") and b"2 connections are open" in busy
    finally:
        for s in idle:
            s.close()
    assert wait_until(lambda: _get(srv.url + "api/snapshot")[0] == 200, 5)


@pytest.mark.parametrize("text, expected", [
    ("8080", ("127.0.0.1", 8080, False)), (":0", ("127.0.0.1", 0, False)), ("localhost:9", ("127.0.0.1", 9, False)),
    ("127.0.0.2:80", ("127.0.0.2", 80, False)), ("[::1]:8080", ("::1", 8080, False)),
    ("0.0.0.0:8080", ("0.0.0.0", 8080, True)), ("[::]:8080", ("::", 8080, True)),
])
def test_bind_addresses(text, expected):
    assert parse_bind(text) == expected


@pytest.mark.parametrize("text, needle", [
    ("192.168.1.5:8080", "binds only to loopback"), ("example.com:80", "binds only to loopback"),
    ("127.0.0.1:http", "port must be a number"), ("127.0.0.1:70000", "port must be a number"),
])
def test_bind_refusals(text, needle):
    with pytest.raises(EdgepackError, match=needle):
        parse_bind(text)


def test_stop_is_prompt_with_a_stream_open(server):
    srv = server()
    s = _open_stream(srv.port, "?plots=0")
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 3
    s.close()
