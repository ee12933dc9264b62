"""Slow and many clients (issue #11, items 2 and 3): idle, header and body timeouts, a connection cap that
answers 503 at once, /v1/health answering while inference is saturated or descriptors run out, and under
overload every client gets an answer (200, or 503 with retry_after_ms and Retry-After), never a reset."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import numpy as np
from edgepack_runtime.server import EVICT_IDLE_S

from tests.agent.http_kit import BATCH, bundle, exchange, get, read_response, request, served

X = json.dumps({"inputs": {"x": np.zeros((BATCH, 8)).tolist()}}).encode()


def test_idle_connection_is_closed_after_the_idle_timeout():
    with served(idle_timeout=0.3) as (_, server):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            assert s.recv(100) == b""                                   # closed by the server, no answer
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:   # keep-alive, then idle
            s.sendall(request("GET", "/v1/health"))
            assert read_response(s)[0] == 200
            assert s.recv(100) == b""


def test_a_slow_header_gets_408_and_is_closed():
    with served(header_timeout=0.5) as (_, server):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET /v1/health HTTP/1.1\r\n")
            for _ in range(30):                                          # a byte every 0.1 s, never finishing
                try:
                    s.sendall(b"X")
                except OSError:
                    break
                time.sleep(0.1)
            answer = read_response(s)
            assert answer is None or answer[0] == 408


def test_a_slow_body_gets_408():
    with served(body_timeout=0.5) as (_, server):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(request("POST", "/v1/infer", b"", {"Content-Length": "100"}) + b"{")
            status, headers, body = read_response(s)
            assert status == 408 and headers["connection"] == "close" and "body" in body["error"]


def test_connections_over_the_cap_get_503_at_once():
    with served(max_connections=3) as (_, server):
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(3)]
        for s in held:
            s.sendall(b"GET /v1/health HTTP/1.1\r\n")                  # busy: mid-header, not idle
        time.sleep(0.2)
        status, headers, body = get(server.port, "/v1/health")
        assert status == 503 and body["retry_after_ms"] > 0 and int(headers["retry-after"]) >= 1
        for s in held:
            s.sendall(b"\r\n")
            assert read_response(s)[0] == 200
            s.close()


def _until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the agent did not reach the expected state"
        time.sleep(0.01)


def test_idle_connections_make_room_for_health_while_inference_is_saturated():
    with served(agent_kw={"queue_size": 1}, max_connections=6) as (agent, server):
        agent.paused.clear()
        results = []
        busy = [threading.Thread(target=lambda: results.append(exchange(server.port, request("POST", "/v1/infer", X),
                                                                        timeout=30))) for _ in range(2)]
        # one request held by the paused worker, then one waiting in the queue (size 1): both slots taken.
        # Sent together, the second could find the queue still full and be answered 503 at once.
        for t, queued in zip(busy, (0, 1)):
            t.start()
            _until(lambda: server.api.slots._value == 1 - queued and agent.requests.qsize() == queued)
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(10)]
        time.sleep(EVICT_IDLE_S + 2.0)     # a wide margin: accepting them may lag on a loaded machine
        status, _, health = get(server.port, "/v1/health")
        assert status == 200 and health["queue"]["max"] == 1
        assert exchange(server.port, request("POST", "/v1/infer", X))[0] == 503
        agent.paused.set()
        for t in busy:
            t.join(30)
        assert sorted(r[0] for r in results) == [200, 200]
        for s in idle:
            s.close()


def test_health_answers_when_clients_hold_more_connections_than_descriptors(tmp_path):
    """The agent runs with RLIMIT_NOFILE 256 while 400 idle clients are connected."""
    code = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
from edgepack_runtime.cli import main
sys.exit(main(["agent", "--bundle", {str(bundle())!r}, "--http-port", "0", "--http-max-connections", "64"]))
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    conns = []
    try:
        line = proc.stdout.readline()
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        for _ in range(400):
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(0.5)
        answer = get(port, "/v1/health", timeout=20)
        assert answer is not None and answer[0] in (200, 503), answer
        deadline = time.monotonic() + 20
        while answer[0] != 200 and time.monotonic() < deadline:    # 503 at the cap is an answer; 200 follows
            time.sleep(0.2)
            answer = get(port, "/v1/health", timeout=20)
        assert answer[0] == 200
    finally:
        for s in conns:
            s.close()
        proc.terminate()
        proc.wait(10)


def _burst(port: int, n: int) -> dict:
    """``n`` clients POST at once on fresh connections; counts answers by status, resets and bad 503s."""
    counts, lock, go = {}, threading.Lock(), threading.Event()

    def one():
        go.wait()
        try:
            answer = exchange(port, request("POST", "/v1/infer", X), timeout=60)
            key = "closed" if answer is None else answer[0]
            if answer and answer[0] == 503 and not (answer[2].get("retry_after_ms") and answer[1].get("retry-after")):
                key = "503-without-retry"
        except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
            key = "reset"
        except OSError as exc:
            key = type(exc).__name__
        with lock:
            counts[key] = counts.get(key, 0) + 1
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(90)
    return counts


def test_200_concurrent_requests_get_200_or_503_never_a_reset():
    with served() as (_, server):
        counts = _burst(server.port, 200)
    assert set(counts) <= {200, 503} and sum(counts.values()) == 200, counts


def test_a_small_queue_answers_busy_not_resets():
    with served(agent_kw={"queue_size": 2}) as (agent, server):
        counts = _burst(server.port, 30)
        assert set(counts) <= {200, 503} and sum(counts.values()) == 30, counts
        assert agent.telemetry.snapshot(reset=False)["busy_rejections"] == counts.get(503, 0)
