"""The local HTTP API's protocol answers (issue #11, item 7): every answer is JSON, a known endpoint with the
wrong method is 405 with an Allow header, an unknown method is 501, a client-sent shape is reported as sent,
and deeply nested JSON is a 400 bounded before json.loads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.agent.http_kit import BATCH, exchange, get, post_json, request, served


@pytest.fixture(scope="module")
def port():
    with served() as (_, server):
        yield server.port


@pytest.mark.parametrize("method,path,allow", [("GET", "/v1/infer", "POST"), ("POST", "/v1/health", "GET"),
                                               ("PUT", "/v1/infer", "POST"), ("DELETE", "/v1/metrics", "GET")])
def test_wrong_method_on_a_known_endpoint_is_405_with_allow(port, method, path, allow):
    status, headers, body = exchange(port, request(method, path))
    assert status == 405 and allow in headers["allow"].split(", ")
    assert headers["content-type"] == "application/json" and method in body["error"]


def test_unknown_method_is_501_in_json(port):
    status, headers, body = exchange(port, request("BREW", "/v1/infer"))
    assert status == 501 and headers["content-type"] == "application/json" and "BREW" in body["error"]


@pytest.mark.parametrize("raw,code", [(b"GARBAGE\r\n\r\n", 400), (b"GET /v1/health HTTP/9.9\r\n\r\n", 505),
                                      (b"GET /v1/health HTTP/1.1\r\nBad Header\r\n\r\n", 400),
                                      (b"GET /v1/health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                                       400)])
def test_malformed_requests_get_json_errors(port, raw, code):
    status, headers, body = exchange(port, raw)
    assert status == code and headers["content-type"] == "application/json" and body["error"]


def test_unknown_path_is_404_and_head_has_no_body(port):
    assert get(port, "/v1/nope")[0] == 404
    status, headers, body = exchange(port, request("HEAD", "/v1/health"))
    assert status == 200 and body == {} and headers["content-type"] == "application/json"


def test_a_negative_dimension_in_a_sent_shape_is_reported_as_sent(port):
    x = {"dtype": "float32", "shape": [-1, 8], "data": ""}
    status, _, body = post_json(port, {"inputs": {"x": x}})
    assert status == 400 and "-1" in body["error"]


def test_a_shape_that_does_not_match_the_data_says_both(port):
    x = {"dtype": "float32", "shape": [BATCH, 9], "data": "AAAAAA=="}
    status, _, body = post_json(port, {"inputs": {"x": x}})
    assert status == 400 and "[4, 9]" in body["error"] and "4 bytes" in body["error"]


@pytest.mark.parametrize("depth", [40, 3000, 100_000])
def test_deep_nesting_is_400_and_the_server_keeps_serving(port, depth):
    raw = ('{"inputs": {"x": ' + "[" * depth + "1" + "]" * depth + "}}").encode()
    status, _, body = exchange(port, request("POST", "/v1/infer", raw))
    assert status == 400 and "nest" in body["error"]
    assert post_json(port, {"inputs": {"x": np.zeros((BATCH, 8)).tolist()}})[0] == 200


def test_bad_content_length_and_chunked_bodies(port):
    status, _, body = exchange(port, request("POST", "/v1/infer", b"{}", {"Content-Length": "-5"}))
    assert status == 400 and "Content-Length" in body["error"]
    raw = request("POST", "/v1/infer", b"", {"Content-Length": None, "Transfer-Encoding": "chunked"}) + b"0\r\n\r\n"
    status, _, body = exchange(port, raw)
    assert status == 411 and "Content-Length" in body["error"]
    status, _, body = exchange(port, request("POST", "/v1/infer", json.dumps([1]).encode()))
    assert status == 400 and "inputs" in body["error"]
