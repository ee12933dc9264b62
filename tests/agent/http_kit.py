"""Helpers of the HTTP API tests (tests/agent/test_http_*.py): small bundles built once per process, a
served agent, and raw HTTP exchanges bounded by socket timeouts (a hang fails the test, never blocks it)."""
from __future__ import annotations

import contextlib
import functools
import json
import socket
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgepack.build import build
from edgepack_runtime import Runtime
from edgepack_runtime.agent import Agent
from edgepack_runtime.server import AgentServer

BATCH = 4
RNG = np.random.default_rng(11)


@functools.lru_cache(maxsize=None)
def bundle(kind: str = "clf") -> Path:
    """``clf``: x[4, 8] -> softmax p[4, 4]; ``two``: a[1, 8] + b[1, 8] -> y[1, 8] (two named inputs)."""
    d = Path(tempfile.mkdtemp(prefix=f"http-{kind}-"))
    if kind == "clf":
        w = nh.from_array(RNG.standard_normal((4, 8)).astype(np.float32), "W")
        g = h.make_graph([h.make_node("Gemm", ["x", "W"], ["l"], transB=1), h.make_node("Softmax", ["l"], ["p"])],
                         "clf", [h.make_tensor_value_info("x", TP.FLOAT, [BATCH, 8])],
                         [h.make_tensor_value_info("p", TP.FLOAT, [BATCH, 4])], [w])
        samples = [{"x": RNG.standard_normal((BATCH, 8)).astype(np.float32)} for _ in range(20)]
    else:
        g = h.make_graph([h.make_node("Add", ["a", "b"], ["y"])], "two",
                         [h.make_tensor_value_info(n, TP.FLOAT, [1, 8]) for n in "ab"],
                         [h.make_tensor_value_info("y", TP.FLOAT, [1, 8])])
        samples = [{n: RNG.standard_normal((1, 8)).astype(np.float32) for n in "ab"} for _ in range(20)]
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), d / f"{kind}.onnx")
    return build(d / f"{kind}.onnx", targets=["cpu"], samples=samples, out=d / f"{kind}.edgepack").path


@contextlib.contextmanager
def served(kind: str = "clf", agent_kw: dict | None = None, **limits):
    """An agent on ``bundle(kind)`` behind an AgentServer with ``limits``; yields (agent, server)."""
    agent = Agent(Runtime.open(bundle(kind)), drift=False, **(agent_kw or {})).start()
    server = AgentServer(agent, **limits).start()
    try:
        yield agent, server
    finally:
        server.stop()
        agent.stop()


def request(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    head = {"Host": "127.0.0.1", "Content-Length": str(len(body)), **(headers or {})}
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_response(sock: socket.socket, head: bool = False) -> tuple[int, dict, dict] | None:
    """(status, headers lower-cased, JSON body) of one response, or None when the server closed first;
    ``head``: the answer to a HEAD request (no body whatever its Content-Length)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    top, _, rest = buf.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    n = 0 if head else int(headers.get("content-length", 0))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, json.loads(rest[:n]) if n else {}


def exchange(port: int, raw: bytes, timeout: float = 10.0):
    """Send ``raw`` on a new connection and read one response (None: closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(s, head=raw.startswith(b"HEAD "))


def post_json(port: int, body, path: str = "/v1/infer", timeout: float = 30.0):
    return exchange(port, request("POST", path, json.dumps(body).encode(),
                                  {"Content-Type": "application/json"}), timeout)


def get(port: int, path: str, timeout: float = 10.0):
    return exchange(port, request("GET", path), timeout)
