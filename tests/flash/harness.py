"""The device receiver and the host sender joined in one process, without a broker: what the device asks for
is handed to the real ``Sender`` and what it answers is fed back to the real ``Receiver`` (the MQTT hop is
tested separately, against mosquitto). Statuses and requests are recorded for the assertions."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

from edgepack.fleet.transfer import BundleFile, Sender
from edgepack_runtime.ota import Updater
from edgepack_runtime.ota.chunks import make_offer, parse_request
from edgepack_runtime.ota.transfer import Receiver


class Loop:
    """``Loop(state_dir, first_bundle)``: an Updater with ``first_bundle`` installed and a Receiver on it."""

    def __init__(self, state: Path, first: Path | None = None, *, profile: str | None = None, **kw):
        self.updater = Updater(state, profile=profile)
        if first is not None:
            assert self.updater.install(first, update_id="first")["state"] == "committed"
        self.requests: list[tuple[str, list[int]]] = []
        self.reports: list[dict] = []
        self.connected = True
        kw.setdefault("record", state / "flash.json")
        self.rx = Receiver(self.updater, send=self._send, report=self.reports.append, **kw)
        self.sender: Sender | None = None

    def _send(self, kind: str, payload: bytes) -> bool:
        assert kind == "ota/request"
        if not self.connected:
            return False
        doc = json.loads(payload)
        self.requests.append((doc["update_id"], parse_request(payload, 1 << 20)[2]))
        if self.sender is not None:
            self.sender.on_request("dev", payload)
        return True

    def offer(self, bundle: Path, chunk_size: int = 4096, update_id: str | None = None, **extra):
        """Offer ``bundle`` (the host's BundleFile and make_offer), serving it through a real Sender."""
        source = BundleFile.open(bundle, chunk_size)
        offer = make_offer(update_id or uuid.uuid4().hex, source.sha256, source.size, chunk_size, source.hashes,
                           epoch="e1", **extra)
        self.sender = Sender(source)
        self.sender.serve("dev", offer, "e1")
        return offer

    def deliver(self, limit: int | None = None) -> int:
        """Hand the queued chunks to the receiver (at most ``limit``); returns how many were delivered."""
        n = 0
        while limit is None or n < limit:
            nxt = self.sender.next_chunk()
            if nxt is None:
                break
            _, uid, index = nxt
            payload = self.sender.payload(uid, index)
            self.sender.sent("dev", index, len(payload))
            self.rx.on_chunk(f"ota/data/{uid}", payload)
            n += 1
        return n

    def wait_final(self, timeout: float = 30.0) -> dict:
        """The receiver's install runs in a worker thread: wait for it, return the last final report."""
        worker = self.rx._worker
        if worker is not None:
            worker.join(timeout)
        final = [r for r in self.reports if r["state"] in ("committed", "rolled_back", "failed")]
        assert final, self.reports
        return final[-1]

    def asked(self) -> list[int]:
        return [i for _, idx in self.requests for i in idx]
