"""Request bodies of the local HTTP API (issue #11, item 5): a max body size, a byte budget for bodies in
flight (413 for one request too large for it, 503 busy when the budget is taken), decoding only after
admission, and binary bodies (application/x-npy, application/x-npz) besides JSON."""
from __future__ import annotations

import base64
import io
import json
import threading

import numpy as np
import pytest

from edgepack_runtime import wire
from tests.agent.http_kit import BATCH, exchange, post_json, request, served


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npz(compressed=False, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _post(port, body: bytes, ctype: str):
    return exchange(port, request("POST", "/v1/infer", body, {"Content-Type": ctype}), timeout=30)


def test_npy_body_for_a_single_input_model():
    x = np.random.default_rng(1).standard_normal((BATCH, 8)).astype(np.float32)
    with served() as (agent, server):
        status, _, body = _post(server.port, _npy(x), "application/x-npy")
        assert status == 200
        want = agent.run({"x": x})["p"]
        np.testing.assert_allclose(wire.decode("p", body["outputs"]["p"], "float32"), want, rtol=1e-6)
        status, _, body = _post(server.port, _npy(x.astype(">f4")), "application/x-npy")   # big-endian is fine
        assert status == 200
        status, _, body = _post(server.port, _npy(x.astype(np.float64)), "application/x-npy")
        assert status == 400 and "float32" in body["error"]
        status, _, body = _post(server.port, _npy(x)[:-4], "application/x-npy")            # truncated
        assert status == 400 and "npy" in body["error"]
        status, _, body = _post(server.port, _npy(np.array([{"a": 1}], dtype=object)), "application/x-npy")
        assert status == 400


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_body_names_the_inputs(compressed):
    a, b = np.ones((1, 8), np.float32), np.arange(8, dtype=np.float32)[None]
    with served("two") as (_, server):
        status, _, body = _post(server.port, _npz(compressed, a=a, b=b), "application/x-npz")
        assert status == 200
        np.testing.assert_array_equal(wire.decode("y", body["outputs"]["y"], "float32"), a + b)
        status, _, body = _post(server.port, _npy(a), "application/x-npy")
        assert status == 400 and "x-npz" in body["error"]
        status, _, body = _post(server.port, _npz(compressed, a=a, c=b), "application/x-npz")
        assert status == 400 and "'c'" in body["error"]
        status, _, body = _post(server.port, b"PK\x03\x04garbage", "application/x-npz")
        assert status == 400 and "npz" in body["error"]


def test_a_compressed_npz_member_larger_than_the_budget_is_refused_unread():
    bomb = _npz(True, a=np.zeros((1, 4_000_000), np.float32), b=np.zeros((1, 8), np.float32))   # 16 MB inflated
    with served("two", max_body=2 ** 20, body_budget=4 * 2 ** 20) as (_, server):
        status, _, body = _post(server.port, bomb, "application/x-npz")
        assert status == 413 and "npz" in body["error"]


def test_base64_json_form():
    x = np.full((BATCH, 8), 0.5, np.float32)
    b64 = base64.b64encode(x.tobytes()).decode()
    with served() as (_, server):
        status, _, _ = post_json(server.port, {"inputs": {"x": {"dtype": "float32", "shape": [BATCH, 8],
                                                                "data": b64}}})
        assert status == 200


def test_max_body_answers_413_even_when_the_body_is_sent():
    with served(max_body=1000) as (_, server):
        status, headers, body = _post(server.port, b" " * 5000, "application/json")
        assert status == 413 and "exceeds" in body["error"] and "1000" in body["error"]
        assert headers["connection"] == "close"
        assert post_json(server.port, {"inputs": {"x": np.zeros((BATCH, 8)).tolist()}})[0] == 200


def test_nested_lists_are_charged_for_what_they_decode_to():
    """A JSON body of 30,000 small numbers is ~60 KB of text but ~1.2 MB of Python objects once decoded."""
    raw = json.dumps({"inputs": {"x": [[0] * 30_000]}}).encode()
    with served(body_budget=500_000) as (_, server):
        status, _, body = _post(server.port, raw, "application/json")
        assert status == 413 and "application/x-npy" in body["error"]


def test_bodies_in_flight_share_a_byte_budget_and_decode_only_after_admission(monkeypatch):
    from edgepack_runtime import httpbody
    decoded = []
    real = httpbody.decode_body
    monkeypatch.setattr(httpbody, "decode_body", lambda *a, **k: decoded.append(1) or real(*a, **k))
    x = _npy(np.zeros((BATCH, 8), np.float32))
    with served(agent_kw={"queue_size": 8}, body_budget=2 * len(x) + 10) as (agent, server):
        agent.paused.clear()                                          # hold the worker
        results = []
        threads = [threading.Thread(target=lambda: results.append(_post(server.port, x, "application/x-npy")))
                   for _ in range(2)]
        for t in threads:
            t.start()
        deadline = __import__("time").monotonic() + 10
        while len(decoded) < 2 and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.02)
        status, headers, body = _post(server.port, x, "application/x-npy")     # the budget is taken
        assert status == 503 and body["retry_after_ms"] > 0 and int(headers["retry-after"]) >= 1
        assert len(decoded) == 2                                      # the third body was never decoded
        agent.paused.set()
        for t in threads:
            t.join(30)
        assert sorted(r[0] for r in results) == [200, 200]
        assert _post(server.port, x, "application/x-npy")[0] == 200      # the budget was given back
