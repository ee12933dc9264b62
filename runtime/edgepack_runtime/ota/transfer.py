"""The device end of ``edgepack flash``: pull a bundle in chunks over MQTT into a staging file, then install it.

Protocol 1 (wire format in ``chunks.py``). The host publishes a retained ``ota/offer``; the device checks it
(size limit, free disk space, device profile), opens ``updater.staging_path(sha256[:32])`` and asks for what it
lacks on ``ota/request``, at most ``window`` chunks outstanding; the host answers each index on
``ota/data/<update_id>``. A chunk is written at its offset only if its structure, update id, length and sha256
(against the offer's hash list) are right and the device asked for it; anything else is counted and refused.
The received-chunk map is persisted beside the staging file (``<staging>.part.json``, after an fsync of the
data), so a restart of either side resumes: a reconnect redelivers the retained offer and the device asks
again only for chunks it does not hold; chunks asked for and not arriving within ``request_timeout`` are asked
again (the timeout doubles, up to ``max_timeout``, while nothing arrives). When every chunk is in, the whole
file's sha256 is checked (a mismatch re-checks each chunk and fetches the bad ones again), then
``updater.install(path, update_id=..., budget_ms=...)`` runs in a worker thread. The staging file is removed
when the update ends, whatever the outcome; a failed write (disk full) ends the update as ``failed``.

States reported on ``ota/status``: ``downloading`` (``progress`` = fraction received), then the Updater's own
(``verifying``, ``installing``, ``health_check``, ``switching``, ``committed`` / ``rolled_back`` / ``failed``).
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from ..payload import BadCommand
from .chunks import (MAX_BUNDLE_BYTES, MAX_REQUEST_CHUNKS, PROTOCOL, Offer, offer_id, parse_chunk, parse_offer,
                     request_bytes)
from .staged import Record, StagedFile, install_need
from .window import Window

log = logging.getLogger("edgepack_runtime.ota.transfer")
FINAL = ("committed", "rolled_back", "failed")
REFUSALS = ("malformed", "unknown_update", "wrong_hash", "unsolicited", "duplicates")


class Receiver:
    """Receives offered bundles for one device. Feed it ``on_offer``/``on_chunk`` (from the MQTT link's thread)
    and call ``tick()`` periodically (``run`` loops it); ``send(kind, payload) -> bool`` publishes a request
    without storing it, ``report(status)`` publishes a status."""

    def __init__(self, updater, *, send: Callable[[str, bytes], bool], report: Callable[[dict], None],
                 window: int = 16, request_timeout: float = 10.0, max_timeout: float = 30.0,
                 max_bundle_bytes: int = MAX_BUNDLE_BYTES, reserve_bytes: int = 0,
                 profile: str | None = None, preallocate: bool = True, checkpoint_s: float = 1.0,
                 record: Path | None = None, clock: Callable[[], float] = time.monotonic):
        if not 1 <= window <= MAX_REQUEST_CHUNKS:
            raise ValueError(f"window must be in [1, {MAX_REQUEST_CHUNKS}], not {window!r}")
        self.updater, self.send, self.report = updater, send, report
        self.window, self.request_timeout, self.max_timeout = window, request_timeout, max_timeout
        self.max_bundle_bytes, self.reserve_bytes = min(max_bundle_bytes, MAX_BUNDLE_BYTES), reserve_bytes
        self.profile = profile if profile is not None else getattr(updater, "profile", None)
        self.preallocate, self.checkpoint_s, self.clock = preallocate, checkpoint_s, clock
        self.counters = dict.fromkeys(("offers", "bad_offers", "requests", "requested", "rerequested", "received",
                                       "resumed", "write_errors", *REFUSALS), 0)
        self.last_refusal: str | None = None
        self.dl: StagedFile | None = None
        self.offer: Offer | None = None
        self._w = self._window()
        self._last_report = 0.0
        self._worker: threading.Thread | None = None
        self._waiting: bytes | None = None          # an offer that came while an install was running
        self._lock = threading.RLock()
        self._record = Record(record)
        # offers of mode "shadow" (edgepack_runtime.shadow sets this): install(path, update_id=, budget_ms=, meta=)
        # -> status; their downloads leave the Updater's state alone (no begin_download/downloaded/abort)
        self.shadow: Callable[..., dict] | None = None
        self._shadow_ids: set[str] = set()

    # offers -----------------------------------------------------------------------------
    def on_offer(self, suffix: str, raw: bytes) -> None:
        """A (re)delivered retained offer; an empty payload withdraws it."""
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                self._waiting = bytes(raw)
                return
            if not raw:
                self._withdrawn()
                return
            self.counters["offers"] += 1
            try:
                offer = parse_offer(raw, max_bundle_bytes=self.max_bundle_bytes)
            except BadCommand as exc:
                self.counters["bad_offers"] += 1
                self._refuse(offer_id(raw), f"offer refused: {exc}")
                return
            cur = self.offer
            if cur is not None and (cur.update_id, cur.sha256, cur.size, cur.chunk_size) == (
                    offer.update_id, offer.sha256, offer.size, offer.chunk_size):
                self.offer = self.dl.offer = offer       # redelivered after a reconnect (maybe a new epoch):
                self._w.lost_all()                       # what was in flight is gone, ask again
                self._fill()
                return
            self._start(offer)

    def _start(self, offer: Offer) -> None:
        finished = self._record.get(offer.update_id) or self._already(offer.update_id)
        if finished is not None:
            self.report({**finished, "update_id": offer.update_id, "note": "already handled"})
            return
        if self.dl is not None:                          # the operator's latest offer wins
            self.dl.checkpoint()
            self.dl.close()                              # kept if the new offer is the same bytes
            self.dl, self.offer = None, None
        problem = self._unsuitable(offer)
        if problem:
            return self._refuse(offer.update_id, problem, model=offer.model)
        if offer.mode == "shadow":
            self._shadow_ids.add(offer.update_id)
        try:
            self._hook("begin_download", offer.update_id, {"sha256": offer.sha256, "model": offer.model})
            path = Path(self.updater.staging_path(offer.update_id))
            self.dl = StagedFile.open(offer, path, preallocate=self.preallocate)
        except Exception as exc:  # noqa: BLE001  (OSError: disk; OtaError: the Updater is busy or broken)
            self.dl = None
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return self._fail(offer, f"cannot start the download: {why} (free disk space on the device, or "
                                     "check `edgepack-device ota-status`)")
        self.offer, self._w = offer, self._window()
        self.counters["resumed"] += self.dl.count
        self._status("downloading")
        if self.dl.complete:
            self._complete()
        else:
            self._fill()

    def _hook(self, name: str, *args):
        """Tell the Updater about the download (``begin_download``, ``downloaded``, ``abort``) if it listens."""
        if args and args[0] in self._shadow_ids:         # a shadow download is not an update of the slots
            return None
        method = getattr(self.updater, name, None)
        return method(*args) if method is not None else None

    def _unsuitable(self, offer: Offer) -> str | None:
        """Why this device refuses ``offer`` before downloading anything, or None."""
        if offer.mode == "shadow" and self.shadow is None:
            return "this agent does not run shadow bundles (it has no shadow installer); update the agent"
        if offer.profiles and self.profile and self.profile not in offer.profiles:
            return (f"bundle suits device profiles {', '.join(offer.profiles)}, not this device's {self.profile}; "
                    "build it for this profile (edgepack build --target PROFILE)")
        try:
            free = int(self.updater.free_bytes())
        except OSError as exc:
            return f"cannot tell the free disk space: {exc}"
        held = StagedFile.held(offer, Path(self.updater.staging_path(offer.update_id)).parent)
        need = offer.size - held + install_need(offer.size) + self.reserve_bytes
        if need > free:
            return (f"not enough disk space for a {offer.size}-byte bundle: {free} bytes free, {need} needed "
                    "(the download, then its copy into a slot); free space on the device and flash again")
        return None

    def _already(self, update_id: str) -> dict | None:
        """The Updater's final status if it already finished ``update_id`` (e.g. recovered after a restart)."""
        try:
            st = self.updater.status() if hasattr(self.updater, "status") else None
        except Exception:  # noqa: BLE001  (the Updater's status is advisory here)
            return None
        if isinstance(st, dict) and st.get("update_id") == update_id and st.get("state") in FINAL:
            return st
        return None

    def _withdrawn(self) -> None:
        """The host took the offer back: stop asking, keep the staging file for a later offer of the same bundle."""
        if self.dl is not None:
            self.dl.checkpoint()
            self.dl.close()
        self.dl, self.offer = None, None

    # chunks -----------------------------------------------------------------------------
    def on_chunk(self, suffix: str, raw: bytes) -> None:
        """One ``ota/data/<update_id>`` message: verified, then written at its offset, or refused and counted."""
        with self._lock:
            try:
                uid, index, digest, data = parse_chunk(raw)
            except BadCommand as exc:
                return self._refused("malformed", str(exc))
            offer, dl = self.offer, self.dl
            if offer is None or dl is None or uid != offer.update_id or suffix.rsplit("/", 1)[-1] != uid:
                return self._refused("unknown_update", f"chunk for update {uid} (topic {suffix[-60:]}), "
                                                       f"expecting {offer.update_id if offer else 'none'}")
            if index >= offer.chunks or len(data) != offer.length(index):
                return self._refused("malformed", f"chunk {index} of {len(data)} bytes does not fit the offer")
            if dl.has(index):
                return self._refused("duplicates", f"chunk {index} arrived again")
            if index not in self._w:
                return self._refused("unsolicited", f"chunk {index} was not asked for")
            if digest != offer.digest(index) or hashlib.sha256(data).digest() != digest:
                self._refused("wrong_hash", f"chunk {index} does not match its sha256; asked again")
                self._w.lost(index)
                return self._fill()
            self._write(index, data)

    def _write(self, index: int, data) -> None:
        dl = self.dl
        try:
            dl.write(index, data)
        except OSError as exc:
            self.counters["write_errors"] += 1
            return self._fail(self.offer, f"writing chunk {index} failed: {exc.strerror or exc} (disk full?); "
                                          "the staging file was removed and nothing was installed")
        self.counters["received"] += 1
        self._w.arrived(index)
        if self.clock() - dl.saved_at >= self.checkpoint_s:
            dl.checkpoint()
        if dl.complete:
            return self._complete()
        if self.clock() - self._last_report >= 1.0:
            self._status("downloading")
        if self._w.wants_more():
            self._fill()

    def _refused(self, kind: str, why: str) -> None:
        self.counters[kind] += 1
        self.last_refusal = why
        log.debug("flash: %s", why)

    # requests ---------------------------------------------------------------------------
    def _window(self) -> Window:
        return Window(self.window, self.request_timeout, self.max_timeout, self.clock)

    def _fill(self) -> None:
        """Ask for missing chunks until ``window`` are outstanding."""
        dl, offer = self.dl, self.offer
        if dl is None or offer is None or dl.complete:
            return
        want = self._w.choose(dl.has, dl.next_missing)
        if want and self.send("ota/request", request_bytes(offer.update_id, offer.epoch, want)):
            self.counters["requests"] += 1
            for i in want:
                self.counters["rerequested" if dl.ask(i) else "requested"] += 1
            self._w.asked(want)
        elif want:
            self._w.unsent(want)                        # not connected: ask when the link is back

    def tick(self) -> None:
        """Ask again for chunks overdue by ``request_timeout`` (doubling while nothing arrives); checkpoint."""
        with self._lock:
            dl = self.dl
            if dl is None or self.offer is None or dl.complete:
                return
            self._w.overdue()
            self._fill()
            if dl.dirty and self.clock() - dl.saved_at >= self.checkpoint_s:
                dl.checkpoint()

    def run(self, stop: threading.Event, beat: Callable[[], None] = lambda: None, every: float = 0.25) -> None:
        """``tick()`` every ``every`` seconds until ``stop`` is set (the agent runs this in a supervised thread)."""
        while not stop.wait(every):
            beat()
            self.tick()

    # the end of a transfer ----------------------------------------------------------------
    def _complete(self) -> None:
        self.dl.checkpoint()
        self._worker = threading.Thread(target=self._finish, args=(self.dl, self.offer), name="edgepack-ota-install",
                                        daemon=True)
        self._worker.start()

    def _finish(self, dl: StagedFile, offer: Offer) -> None:
        try:
            bad = dl.bad_chunks()
        except OSError as exc:
            bad = f"cannot read the staging file back: {exc.strerror or exc}"
        with self._lock:
            if isinstance(bad, list) and bad:             # whole-file sha256 is off: fetch the bad chunks again
                self._w.retry.extend(bad)
                self._worker = None
                return self._fill()
            self.dl, self.offer = None, None
        dl.close()
        if bad is not None and not isinstance(bad, str):
            self.report({"update_id": offer.update_id, "state": "downloaded", "progress": 1.0, "reason": None,
                         "model": offer.model, "transfer": self.transfer_counters()})
        try:
            if bad is None or isinstance(bad, str):
                raise ValueError(bad or "every chunk matches the offer's hash list but the file does not match "
                                        "its sha256: the offer contradicts itself")
            self._hook("downloaded", offer.update_id)
            meta = {"sha256": offer.sha256, "model": offer.model, "via": "mqtt"}
            install = self.updater.install
            if offer.mode == "shadow" and self.shadow is not None:
                install, meta = self.shadow, dict(meta, shadow_share=offer.shadow_share)
            result = install(dl.path, update_id=offer.update_id, budget_ms=offer.budget_ms, meta=meta)
            result = dict(result) if isinstance(result, dict) else {"state": "committed"}
        except Exception as exc:  # noqa: BLE001  (whatever install raises ends this update, never the agent)
            why = f"{exc.strerror} (disk full?)" if isinstance(exc, OSError) and exc.strerror else str(exc)
            result = {"state": "failed", "progress": None,
                      "reason": f"the update could not be installed: {why}; the previous model keeps serving"}
            try:
                self._hook("abort", offer.update_id, result["reason"])     # the Updater rests in failed
            except Exception as inner:  # noqa: BLE001
                log.debug("Updater.abort: %s", inner)
        dl.discard()
        self._end(offer, result)

    def _end(self, offer: Offer, result: dict) -> None:
        result = {**result, "update_id": offer.update_id, "model": result.get("model") or offer.model}
        self._record.put(offer.update_id, {k: result.get(k) for k in ("state", "reason")})
        self.report({**result, "transfer": self.transfer_counters()})
        with self._lock:
            self._worker, waiting, self._waiting = None, self._waiting, None
        if waiting is not None:
            self.on_offer("ota/offer", waiting)

    def _fail(self, offer: Offer, reason: str, staged: StagedFile | None = None) -> None:
        """End ``offer``'s download as failed: staging removed, the Updater told, the host told."""
        staged = staged or self.dl
        if staged is not None:
            staged.discard()
        if self.offer is offer:
            self.dl, self.offer = None, None
        try:
            self._hook("abort", offer.update_id, reason)
        except Exception as exc:  # noqa: BLE001  (the Updater may not be in that update: our report stands)
            log.debug("Updater.abort: %s", exc)
        self._refuse(offer.update_id, reason, model=offer.model)

    def _refuse(self, update_id: str | None, reason: str, model: dict | None = None) -> None:
        log.warning("flash refused: %s", reason)
        if update_id:
            self._record.put(update_id, {"state": "failed", "reason": reason})
        self.report({"update_id": update_id, "state": "failed", "progress": None, "reason": reason,
                     "model": model, "transfer": self.transfer_counters()})

    def cancel(self, reason: str = "cancelled by the host") -> dict:
        """Give up the current download (``ota-cancel``): staging removed, reported as failed."""
        with self._lock:
            offer = self.offer
            if offer is None or (self._worker is not None and self._worker.is_alive()):
                return {"cancelled": False, "update_id": offer.update_id if offer else None}
            self._fail(offer, reason)
            return {"cancelled": True, "update_id": offer.update_id}

    # reporting --------------------------------------------------------------------------
    def _status(self, state: str, progress: float | None = None) -> None:
        dl, offer = self.dl, self.offer
        self._last_report = self.clock()
        self.report({"update_id": offer.update_id, "state": state, "reason": None, "model": offer.model,
                     "progress": progress if progress is not None else round(dl.count / offer.chunks, 4),
                     "transfer": self.transfer_counters()})

    def transfer_counters(self) -> dict:
        out = dict(self.counters)
        if self.dl is not None and self.offer is not None:
            out.update(chunks=self.offer.chunks, have=self.dl.count, outstanding=len(self._w.outstanding))
        return out

    def status(self) -> dict:
        with self._lock:
            return {"update_id": self.offer.update_id if self.offer else None, "counters": self.transfer_counters(),
                    "last_refusal": self.last_refusal}


def attach(agent, link, updater, **settings) -> Receiver:
    """Wire a ``Receiver`` between the agent's ``MqttLink`` and its ``Updater`` (call before the link starts):
    offers and chunks are routed to it, requests sent without the outbox, statuses published retained on
    ``ota/status``, and the state message announces flash support (``ota``) and the device ``profile``."""
    staging = Path(getattr(updater, "staging_dir", None) or Path(updater.staging_path("probe")).parent)
    receiver = Receiver(updater, send=link.send_now, report=lambda st: link.publish("ota/status", st, retain=True),
                        record=staging.parent / "flash.json", **settings)
    link.route("ota/offer", receiver.on_offer)
    link.route("ota/data/+", receiver.on_chunk)
    link.announce.update(ota=PROTOCOL, profile=receiver.profile)
    agent.supervisor.spawn("edgepack-ota", lambda: receiver.run(agent._stop, agent.supervisor.beat), agent._stop)
    agent.receiver = receiver                            # for the ota-status / ota-cancel commands
    return receiver
