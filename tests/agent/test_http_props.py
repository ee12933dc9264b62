"""Property tests of HTTP request parsing: whatever bytes arrive as request line, headers or body, the agent
answers with a JSON 4xx (or 501/505, or a 200/503 when the bytes happen to form a valid request) or closes
the connection; never a 500, a traceback or a hang (each exchange is bounded by socket timeouts)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.agent.http_kit import exchange, get, request, served

OK = {200, 204, 400, 404, 405, 408, 411, 413, 415, 431, 501, 503, 505}
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server():
    with served(header_timeout=0.3, body_timeout=0.3, idle_timeout=0.3, max_body=4096) as (_, srv):
        yield srv
        assert srv.api.internal_errors == 0


def _check(server, raw: bytes) -> None:
    answer = exchange(server.port, raw, timeout=10)
    if answer is not None:
        status, headers, body = answer
        assert status in OK, (status, body)
        assert headers["content-type"] == "application/json" and isinstance(body, dict)
        if status >= 400 and not raw.startswith(b"HEAD "):
            assert body["error"]
    assert server.api.internal_errors == 0


@PROPS
@given(st.binary(max_size=600))
def test_arbitrary_bytes(server, raw):
    _check(server, raw)


TOKEN = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)
HEADER = st.tuples(st.one_of(TOKEN, st.sampled_from(["Content-Length", "Transfer-Encoding", "Expect", "Connection",
                                                      "Content-Type"])),
                   st.one_of(st.text(max_size=20), st.sampled_from(["-1", "0", "5", "99999999999999999999",
                                                                    "chunked", "100-continue", "close",
                                                                    "application/x-npy", "application/x-npz"])))


@PROPS
@given(st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS", "X"]),
       st.sampled_from(["/v1/infer", "/v1/health", "/v1/metrics", "/", "*", "/v1/infer?x=1"]),
       st.lists(HEADER, max_size=6), st.binary(max_size=300))
def test_structured_requests_with_hostile_headers_and_bodies(server, method, path, headers, body):
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    _check(server, head.encode("utf-8", "replace") + b"\r\n" + body)


@PROPS
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(), st.text(max_size=8)),
                    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=6), c, max_size=4)),
                    max_leaves=30))
def test_json_bodies(server, doc):
    for wrapped in (doc, {"inputs": doc}, {"inputs": {"x": doc}}):
        raw = json.dumps(wrapped).encode()
        _check(server, request("POST", "/v1/infer", raw, {"Content-Type": "application/json"}))


def test_the_server_still_serves_after_the_examples(server):
    assert get(server.port, "/v1/health")[0] == 200
