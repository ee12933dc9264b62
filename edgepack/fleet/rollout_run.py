"""One run of ``edgepack rollout`` (a start or a resume): the wave loop of ``rollout.py``'s module doc.

Every step is saved to the state file before the next one begins, so a kill at any point resumes:
``planned`` -> baseline -> (``shadowing``) -> ``flashing`` (devices already serving the bundle are not
flashed again) -> ``soaking`` (a fresh soak) -> ``passed`` | ``failed`` (rollback of the devices that still
serve the bundle, then ``stopped``).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

from .rollout_state import RolloutError, new_state, parse_share, parse_waves, plan_waves, save
from .rollout_steps import Steps, brief
from .rollout_watch import Observer


class Run(Steps):
    """A start (``start``) or a resume (``resume``) of the rollout whose state file is ``path``."""

    def __init__(self, path: Path, doc: dict | None, broker: str, auth, progress):
        self.path, self.doc, self.broker, self.auth = Path(path), doc, broker, auth
        self.progress = progress or (lambda event, data: None)
        self.obs: Observer | None = None
        self.history = None

    # entry points ------------------------------------------------------------------------
    def start(self, info: dict, fleet: str, settings) -> dict:
        self.settings = settings
        with self._watching(fleet):
            devices, skipped = self._candidates(info)
            waves = plan_waves(devices, parse_share(settings.canary, "--canary"), parse_waves(settings.waves))
            self.doc = new_state(bundle=info, fleet=fleet, broker=self.broker, settings=settings.to_doc(),
                                 waves=waves, skipped=skipped)
            self._save("plan", None, f"{len(devices)} device(s) in {len(waves)} wave(s), {len(skipped)} skipped")
            self.progress("plan", self.doc)
            return self._loop()

    def resume(self) -> dict:
        from .rollout import RolloutSettings
        self.settings = RolloutSettings.from_doc(self.doc["settings"])
        if self.doc["status"] != "running":
            self.progress("done", self.doc)
            return self.doc
        with self._watching(self.doc["fleet"]):
            self._save("resume", None, "resumed")
            return self._loop()

    @contextlib.contextmanager
    def _watching(self, fleet: str):
        from .ingest import Monitor
        self.obs = Observer(fleet)
        a = self.auth
        mon = Monitor(self.broker, fleet=fleet, username=a.username, password=a.password, ca=a.ca)
        mon.add_listener(self.obs.on_message)
        mon.start()
        try:
            if not mon.wait_connected(a.connect_timeout):
                raise RolloutError(f"cannot reach the broker {self.broker} within {a.connect_timeout:g} s"
                                   + (f": {mon.link.last_error}" if getattr(mon.link, "last_error", None) else ""),
                                   hint="check the address, the port and that the broker is running")
            if self.settings.history:
                from .history import open_history
                self.history = open_history(self.settings.history)
            time.sleep(self.settings.discovery)              # retained announcements and OTA statuses
            yield
        finally:
            mon.stop()
            if self.history is not None:
                self.history.close()

    def _candidates(self, info: dict) -> tuple[list[str], list[dict]]:
        """Devices that can take the update now, and the others with the reason."""
        devices, skipped = [], []
        for device, body in sorted(self.obs.devices().items()):
            why = None
            if body.get("state") != "online":
                why = "offline when the rollout was planned"
            elif not body.get("ota"):
                why = "does not take updates over MQTT (its agent runs without a state folder)"
            elif info["profiles"] and body.get("profile") and body["profile"] not in info["profiles"]:
                why = f"profile {body['profile']} is not one the bundle suits ({', '.join(info['profiles'])})"
            elif self.obs.model(device) == info["model_id"]:
                why = f"serves {info['model_id']} already"
            (skipped.append({"device": device, "why": why}) if why else devices.append(device))
        if not devices:
            raise RolloutError(f"no device of fleet {self.obs.fleet!r} can take the update on {self.broker}"
                               + (": " + "; ".join(f"{s['device']}: {s['why']}" for s in skipped[:10]) if skipped else
                                  " (none announced itself)"),
                               hint="check --fleet and the broker, and that the devices' agents run with --state-dir")
        return devices, skipped

    # the loop ----------------------------------------------------------------------------
    def _loop(self) -> dict:
        for wave in self.doc["waves"]:
            if self.doc["status"] != "running":
                break
            if wave["state"] == "passed":
                continue
            if wave["state"] == "failed":           # killed between the decision and the end of the rollback
                self._rollback()
                break
            self._wave(wave)
        if self.doc["status"] == "running":
            self.doc["status"] = "completed"
            self._save("done", None, f"{len(self.doc['updated_devices'])} device(s) serve "
                                     f"{self.doc['bundle']['model_id']}")
        self.progress("done", self.doc)
        return self.doc

    def _wave(self, w: dict) -> None:
        if w["state"] == "planned":
            t0 = time.monotonic()
            w["started"] = time.time()
            w["baseline"] = self._baseline(w)
            w["timing"]["baseline_s"] = round(time.monotonic() - t0, 3)
            w["state"] = "shadowing" if self.settings.require_shadow else "flashing"
            self._save("baseline", w, brief(w["baseline"]["all"]))
        if w["state"] == "shadowing":
            from .rollout_shadow import shadow_wave
            t0 = time.monotonic()
            w["shadow"] = verdict = shadow_wave(self, w)
            w["timing"]["shadow_s"] = round(time.monotonic() - t0, 3)
            if not verdict["passed"]:
                return self._fail(w, verdict)
            w["state"] = "flashing"
            self._save("shadow", w, "shadow period passed")
        if w["state"] == "flashing" and not self._flash(w):
            return None
        if w["state"] == "soaking":
            self._soak(w)
        return None

    # bookkeeping -------------------------------------------------------------------------
    def _updated(self, device: str) -> None:
        if device not in self.doc["updated_devices"]:
            self.doc["updated_devices"].append(device)

    def _save(self, event: str, wave: dict | None, text: str) -> None:
        self.doc["log"].append({"ts": round(time.time(), 3), "event": event, "wave": wave and wave["name"],
                                "text": text})
        save(self.path, self.doc)

