"""The agent's local HTTP API (loopback by default), stdlib only.

    POST /v1/infer    {"inputs": {name: array}}  ->  200 {"outputs": {name: array}, "latency_ms": float}
                      400 {"error": ...} bad JSON or input (name, shape, dtype); 413 body too large;
                      503 {"error": "busy", "retry_after_ms": 50} when the request queue is full
                      500 {"error": ...} when the backend fails (the server keeps serving)
    GET  /v1/health   {"status": "ok"|"degraded", "model", "version", "backend", "queue", "mqtt_connected",
                       "outbox", "sink", "problems": [what is wrong with reporting, in words]}
    GET  /v1/metrics  the current telemetry period (not reset)

Arrays are encoded as in ``wire.py``: {"dtype", "shape", "data": base64} or nested lists.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import wire
from .agent import Agent, Busy
from .errors import InputError

MAX_BODY = 64 * 2 ** 20


def make_handler(agent: Agent):
    class Handler(BaseHTTPRequestHandler):
        server_version = "edgepack-agent"

        def log_message(self, *args):  # quiet: telemetry counts requests
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/v1/health":
                self._send(200, agent.health())
            elif self.path == "/v1/metrics":
                self._send(200, agent.telemetry.snapshot(reset=False))
            else:
                self._send(404, {"error": f"no such endpoint {self.path}; use /v1/infer, /v1/health, /v1/metrics"})

        def do_POST(self):
            if self.path != "/v1/infer":
                return self._send(404, {"error": f"no such endpoint {self.path}; POST /v1/infer"})
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                return self._send(400, {"error": "send a Content-Length header with the JSON body"})
            if length > MAX_BODY:
                self.close_connection = True      # do not read the body
                return self._send(413, {"error": f"request body of {length} bytes exceeds {MAX_BODY}"})
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                if not isinstance(body, dict) or not isinstance(body.get("inputs"), dict):
                    raise InputError('the body must be a JSON object {"inputs": {name: array}}')
                dtypes = {s["name"]: s["dtype"] for s in agent.rt.inputs}
                inputs = {k: wire.decode(k, v, dtypes.get(k, "float32")) for k, v in body["inputs"].items()}
                t0 = time.perf_counter()
                out = agent.infer(inputs)
                self._send(200, {"outputs": {k: wire.encode(v) for k, v in out.items()},
                                 "latency_ms": (time.perf_counter() - t0) * 1e3})
            except Busy as exc:
                self._send(503, {"error": "busy", "detail": str(exc), "retry_after_ms": 50})
            except (InputError, ValueError) as exc:
                self._send(400, {"error": str(exc)})
            except Exception as exc:  # a backend failure answers 500; the server keeps serving
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
    return Handler


class AgentServer:
    """Serve ``agent`` on ``host:port`` (port 0 picks a free one) in a background thread."""

    def __init__(self, agent: Agent, host: str = "127.0.0.1", port: int = 0):
        self.httpd = ThreadingHTTPServer((host, port), make_handler(agent))
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="edgepack-http", daemon=True)

    def start(self) -> "AgentServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
