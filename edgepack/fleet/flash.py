"""``edgepack flash`` over MQTT: offer a bundle to devices, serve the chunks they ask for, follow their states.

    results = flash("m.edgepack", broker="mqtt://10.0.0.2:1883", devices=["cam-1", "cam-2"], fleet="lab",
                    progress=lambda rows: ...)      # rows: [{"device", "state", "progress", "reason"}, ...]

Which devices: the ones named (``devices``), or, with none named, every device whose retained ``state``
message is on the broker for ``fleet`` (online or not). A named device that never announced itself is
refused as unknown (a typo must not leave an offer on the broker), unless ``allow_unknown``: then it is
offered and stays ``pending``. A device whose announcement names a device profile the bundle does not suit,
or that does not accept flash (an agent without a state folder), is refused before anything is sent.

Each device gets its own retained offer (``ota/offer``, a new ``update_id`` per run; the wire format is
``edgepack_runtime.ota.chunks``), then its requests are served (``transfer.Sender``) and its ``ota/status``
followed until a final state: ``committed``, ``rolled_back`` or ``failed``. The offer of a finished device is
withdrawn (empty retained message); a device that has not finished by ``timeout`` is ``pending`` (it never
answered: offline) or ``timed_out``, and its offer stays on the broker, so it sees it when it comes back
(run the same command again to serve it; the download resumes where it stopped).
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgepack_runtime.bundle import Bundle
from edgepack_runtime.ota.chunks import DEFAULT_CHUNK, make_offer

from ..errors import BundleError, EdgepackError
from .hostlink import HostLink
from .roster import FINAL, Roster
from .transfer import BundleFile, Sender, fit_chunk_size


@dataclass
class FlashSettings:
    """Knobs of a flash run (all have defaults)."""
    chunk_size: int = DEFAULT_CHUNK     # bytes per chunk (bounded by the protocol and the broker's max packet)
    max_inflight: int = 32              # chunks published and not yet acknowledged by the broker, all devices
    timeout: float = 600.0              # seconds to wait for every device's final state
    discovery: float = 2.0              # seconds to collect the devices' retained announcements
    connect_timeout: float = 10.0
    budget_ms: float | None = None      # health-check latency budget the device must meet (None: the profile's)
    allow_unknown: bool = False         # offer to named devices that never announced themselves (pending)
    mode: str = "install"               # "shadow": run it beside the serving model (edgepack.fleet.shadow)
    shadow_share: float | None = None   # with mode "shadow": share of calls it runs on (None: the device's setting)
    username: str | None = None
    password: str | None = None
    ca: str | None = None


def describe_bundle(path: Path) -> dict:
    """Verify the bundle (structure and every member hash) and say what the offer carries about it."""
    bundle = Bundle.open(path)
    m = bundle.manifest
    targets = m["targets"]
    if any(t.get("portable") or not isinstance(t.get("devices"), list) for t in targets):
        profiles = []             # a portable target, or one that makes no claim: any device may take it
    else:
        profiles = sorted({p for t in targets for p in t["devices"]})
    key_id = None
    try:
        from edgepack_runtime.signing import verify
        key_id = verify(bundle, ()).get("key_id")
    except Exception:  # noqa: BLE001  (signing is optional on the host; the device checks the signature)
        pass
    return {"model": {"name": m["model"]["name"], "version": m["model"]["version"]}, "profiles": profiles,
            "key_id": key_id}


def flash(bundle: str | Path, *, broker: str, devices: list[str] | tuple = (), fleet: str = "default",
          settings: FlashSettings | None = None, progress: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Flash ``bundle`` to ``devices`` (or the whole ``fleet``); returns one result per device (see module doc).

    Raises ``BundleError`` for a bad bundle and ``EdgepackError`` when the broker cannot be reached or no
    device is to be flashed; per-device failures are in the results (``ok`` False)."""
    settings = settings or FlashSettings()
    path = Path(bundle)
    if not path.is_file():
        raise BundleError(f"{path} is not a bundle file", hint="flash sends the .edgepack file `edgepack build` writes")
    info = describe_bundle(path)
    run = FlashRun(path, info, broker, list(devices), fleet, settings)
    return run.execute(progress)


class FlashRun:
    """One ``flash`` invocation: the link, the sender and the roster of devices."""

    def __init__(self, path: Path, info: dict, broker: str, devices: list[str], fleet: str, s: FlashSettings):
        self.path, self.info, self.fleet, self.s = path, info, fleet, s
        self.base = f"edgepack/v1/{fleet}"
        self.roster = Roster(devices)
        self.sender: Sender | None = None
        self.offers: dict[str, object] = {}
        self.run_id = uuid.uuid4().hex[:8]
        self.failure: BundleError | None = None
        self.link = HostLink(broker, on_connect=self._connected, on_message=self._message, pump=self._pump,
                             username=s.username, password=s.password, ca=s.ca)

    def execute(self, progress) -> list[dict]:
        with self.link:
            self.link.wait_connected(self.s.connect_timeout)
            source = BundleFile.open(self.path, fit_chunk_size(self.path.stat().st_size, self.s.chunk_size,
                                                               self.link.max_packet))
            try:
                self.sender = Sender(source, max_inflight=self.s.max_inflight)
                self.roster.discover(self.s.discovery)
                needs = ("shadow",) if self.s.mode == "shadow" else ()
                for device, why in self.roster.choose(self.info["profiles"], self.s.allow_unknown, needs=needs):
                    if why is None:
                        self._offer(device, source)
                if not self.roster.rows:
                    raise EdgepackError(f"no device has announced itself in fleet {self.fleet!r} on {self.link.url}",
                                        hint="name devices with --device, or check the fleet name and the broker")
                self._wait(progress)
            except BaseException:                   # an error or Ctrl-C: no offer is left behind to wait
                self._withdraw()
                raise
            finally:
                self.link.close()
                source.close()
        return self.roster.results(self.sender)

    def _withdraw(self) -> None:
        for device in list(self.offers):
            if self.roster.state(device) not in FINAL:
                self.link.publish(f"{self.base}/{device}/ota/offer", b"", retain=True)

    def _offer(self, device: str, source: BundleFile) -> None:
        offer = make_offer(uuid.uuid4().hex, source.sha256, source.size, source.chunk_size, source.hashes,
                           model=self.info["model"], profiles=tuple(self.info["profiles"]), budget_ms=self.s.budget_ms,
                           key_id=self.info["key_id"], epoch=self._epoch(), ts=time.time(), mode=self.s.mode,
                           shadow_share=self.s.shadow_share)
        self.offers[device] = offer
        self.roster.offered(device, offer.update_id)
        self.sender.serve(device, offer, offer.epoch)
        self.link.publish(f"{self.base}/{device}/ota/offer", offer.to_bytes(), retain=True)

    def _epoch(self) -> str:
        return f"{self.run_id}-{self.link.connections}"

    def _wait(self, progress) -> None:
        deadline = time.monotonic() + self.s.timeout
        while time.monotonic() < deadline and not self.roster.all_final():
            if self.failure is not None:
                raise self.failure
            if progress is not None:
                progress(self.roster.snapshot(self.sender))
            time.sleep(0.1)
        self.roster.expire()
        if progress is not None:
            progress(self.roster.snapshot(self.sender))

    # on the link's thread ---------------------------------------------------------------------
    def _connected(self, link: HostLink) -> None:
        for kind in ("state", "ota/status", "ota/request"):
            link.subscribe(f"{self.base}/+/{kind}")
        if self.sender is None:
            return
        self.sender.reset()                       # a new epoch: devices ask again for what they lack
        for device, offer in list(self.offers.items()):
            if self.roster.state(device) in FINAL:
                continue
            offer = make_offer(offer.update_id, offer.sha256, offer.size, offer.chunk_size, offer.hashes,
                               model=offer.model, profiles=offer.profiles, budget_ms=offer.budget_ms,
                               key_id=offer.key_id, epoch=self._epoch(), ts=time.time(), mode=offer.mode,
                               shadow_share=offer.shadow_share)
            self.offers[device] = offer
            self.sender.serve(device, offer, offer.epoch)
            link.send(f"{self.base}/{device}/ota/offer", offer.to_bytes(), retain=True)

    def _message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 5 or "/".join(parts[:3]) != self.base:
            return
        device, kind = parts[3], "/".join(parts[4:])
        if kind == "ota/request":
            if self.sender is not None:
                self.sender.on_request(device, payload)
            return
        body = _json(payload)
        if kind == "state" and body is not None:
            self.roster.announced(device, body)
        elif kind == "ota/status" and body is not None:
            if self.roster.status(device, body) and self.sender is not None:
                self.sender.stop_serving(device)                     # final: withdraw the offer
                self.link.send(f"{self.base}/{device}/ota/offer", b"", retain=True)

    def _pump(self) -> None:
        sender = self.sender
        if sender is None:
            return
        while self.link.inflight < sender.max_inflight:
            nxt = sender.next_chunk()
            if nxt is None:
                return
            device, uid, index = nxt
            try:
                payload = sender.payload(uid, index)
            except BundleError as exc:                 # the file changed under us: stop the whole run
                self.failure = exc
                sender.reset()
                return
            if not self.link.send(f"{self.base}/{device}/ota/data/{uid}", payload, qos=1):
                return
            sender.sent(device, index, len(payload))


def _json(payload: bytes) -> dict | None:
    try:
        body = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None
