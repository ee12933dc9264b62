"""Real device agents for the flash tests, in this process: ``Device(tmp, port, "cam-1", fleet, bundle)``
runs what ``edgepack-device agent --state-dir ... --broker ...`` runs (settings, make_agent, AgentServer)."""
from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path

import numpy as np

from edgepack_runtime import wire
from edgepack_runtime.agentcli import make_agent, settings
from edgepack_runtime.server import AgentServer

from .bundles import X


class Device:
    def __init__(self, root: Path, port: int, device_id: str, fleet: str, bundle: Path | None = None, **conf):
        self.root, self.port, self.device_id, self.fleet = root / device_id, port, device_id, fleet
        self.root.mkdir(parents=True, exist_ok=True)
        self.conf = dict(broker=f"mqtt://127.0.0.1:{port}", device_id=device_id, fleet=fleet,
                         state_dir=str(self.root / "state"), outbox=str(self.root / "outbox.db"), http_port=0,
                         telemetry_interval=3600.0, bundle=str(bundle) if bundle else None, **conf)
        self.agent = self.server = None

    def start(self) -> "Device":
        self.agent = make_agent(settings(argparse.Namespace(**self.conf)))
        self.agent.start()
        self.server = AgentServer(self.agent, "127.0.0.1", 0).start()
        assert self.agent.sink.connected.wait(10), self.agent.sink.status()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.agent is not None:
            self.agent.stop()
        self.agent = self.server = None

    def bias(self) -> float:
        """What the model served on the local HTTP API adds to x (the bundles add their version's bias)."""
        body = json.dumps({"inputs": {"x": X.tolist()}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.server.port}/v1/infer", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            y = wire.decode("y", json.loads(r.read())["outputs"]["y"], "float32")
        return float(np.round((y - X).mean(), 4))


def wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()
