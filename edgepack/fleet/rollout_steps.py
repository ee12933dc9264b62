"""The steps of a rollout wave (``Run`` inherits them): baseline, flash, soak and judge, fail and roll back.

Each step records what it did in the wave's entry of the state document and saves it (``Run._save``)."""
from __future__ import annotations

import time

from .rollout_gates import figures, judge
from .rollout_watch import history_periods


class Steps:
    def _baseline(self, w: dict) -> dict:
        s, g = self.settings, self.settings.gates
        since, sha = time.time() - s.baseline_window, self.doc["bundle"]["manifest_sha256"]
        wait = s.soak if s.baseline_wait is None else s.baseline_wait
        deadline = time.monotonic() + wait
        while True:
            per = {}
            for d in w["devices"]:
                periods, windows = self.obs.periods(d, since=since, not_sha=sha), self.obs.windows(d, since=since)
                if self.history is not None:
                    old_p, old_w = history_periods(self.history, d, since=since, until=time.time())
                    seen = {p.ts for p in periods}
                    periods = sorted([p for p in old_p if p.ts not in seen] + periods, key=lambda p: p.ts)
                    windows = windows or old_w
                per[d] = (periods, windows)
            base = _figures(per)
            ready = all(len(p) >= g.min_periods for p, _ in per.values()) and \
                base["all"]["calls"] + base["all"]["errors"] >= g.min_calls
            if ready or time.monotonic() >= deadline:
                base["ready"] = ready
                base["since"] = since
                return base
            self.progress("baseline", {"wave": w["name"], "figures": base["all"],
                                       "left_s": round(deadline - time.monotonic(), 1)})
            time.sleep(0.25)

    def _flash(self, w: dict) -> bool:
        from .flash import FlashSettings, flash
        s, a, target = self.settings, self.auth, self.doc["bundle"]["model_id"]
        t0 = time.monotonic()
        todo = [d for d in w["devices"] if self.obs.model(d) != target]
        for d in w["devices"]:
            if d not in todo:
                w["flash"][d] = {"ok": True, "state": "committed", "reason": "served the bundle already (resumed): "
                                                                         "not flashed again", "seconds": 0.0}
                self._updated(d)
        w["flashed_at"] = time.time()
        self._save("flash", w, f"flashing {len(todo)} device(s)")
        if todo:
            fs = FlashSettings(timeout=s.flash_timeout, discovery=s.discovery, budget_ms=s.budget_ms,
                               username=a.username, password=a.password, ca=a.ca, connect_timeout=a.connect_timeout)
            rows = flash(self.doc["bundle"]["path"], broker=self.broker, devices=todo, fleet=self.doc["fleet"],
                         settings=fs, progress=lambda r: self.progress("flash", {"wave": w["name"], "rows": r}))
            for r in rows:
                w["flash"][r["device"]] = {k: r.get(k) for k in ("ok", "state", "reason", "seconds", "update_id")}
                if r["ok"]:
                    self._updated(r["device"])
        w["timing"]["flash_s"] = round(time.monotonic() - t0, 3)
        bad = sorted(d for d in w["devices"] if not (w["flash"].get(d) or {}).get("ok"))
        if bad:
            why = "flash gate: the update did not commit on " + ", ".join(
                f"{d} ({w['flash'].get(d, {}).get('state')}: {w['flash'].get(d, {}).get('reason')})" for d in bad)
            self._fail(w, {"passed": False, "failed": ["flash"], "reason": why,
                           "gates": [{"gate": "flash", "passed": False, "judged": True, "why": why, "devices": bad}]})
            return False
        w["state"] = "soaking"
        self._save("flashed", w, f"{len(w['devices'])} device(s) serve the bundle")
        return True

    def _soak(self, w: dict) -> None:
        s, g = self.settings, self.settings.gates
        longest = s.soak_max if s.soak_max is not None else 2 * s.soak
        t0 = time.monotonic()
        while True:
            elapsed = time.monotonic() - t0
            new = self._new_figures(w)
            enough = all(f["periods"] >= g.min_periods for f in new["devices"].values())
            if elapsed >= s.soak and (enough or elapsed >= longest):
                break
            self.progress("soak", {"wave": w["name"], "elapsed_s": round(elapsed, 1), "soak_s": s.soak,
                                   "figures": new["all"], "baseline": w["baseline"]["all"]})
            time.sleep(min(0.25, max(0.01, s.soak - elapsed)))
        w["timing"]["soak_s"] = round(time.monotonic() - t0, 3)
        w["figures"], w["decision"] = new, judge(w["baseline"], new, g)
        if not w["decision"]["passed"]:
            return self._fail(w, w["decision"])
        w["state"], w["ended"] = "passed", time.time()
        self._save("passed", w, "gates passed: " + brief(new["all"]))
        self.progress("decision", {"wave": w["name"], "decision": w["decision"], "figures": new,
                                   "baseline": w["baseline"]})
        return None

    def _new_figures(self, w: dict) -> dict:
        target, sha = self.doc["bundle"]["model_id"], self.doc["bundle"]["manifest_sha256"]
        per = {}
        for d in w["devices"]:
            since = self.obs.switched(d, target) or w.get("flashed_at")
            per[d] = (self.obs.periods(d, since=since, sha=sha), self.obs.windows(d, since=since))
        return _figures(per)

    def _fail(self, w: dict, decision: dict) -> None:
        w["state"], w["decision"], w["ended"] = "failed", decision, time.time()
        self.doc["reason"] = f"{w['name']} stopped the rollout: {decision['reason']}"
        self._save("failed", w, decision["reason"])
        self.progress("decision", {"wave": w["name"], "decision": decision, "figures": w.get("figures"),
                                   "baseline": w.get("baseline")})
        self._rollback()

    def _rollback(self) -> None:
        """Every device this rollout updated that still serves the bundle goes back to its previous slot."""
        from .rollback import rollback
        a, target = self.auth, self.doc["bundle"]["model_id"]
        t0 = time.monotonic()
        updated = self.doc["updated_devices"]
        todo = [d for d in updated if self.obs.model(d) == target]
        rows = {d: {"ok": True, "state": "not_needed", "reason": f"serves {self.obs.model(d)}"}
                for d in updated if d not in todo}
        self.doc["rollback"] = {"devices": rows, "ok": None, "seconds": None}
        self._save("rollback", None, f"rolling back {len(todo)} device(s)")
        self.progress("rollback", {"devices": todo})
        if todo:
            for r in rollback(broker=self.broker, devices=todo, fleet=self.doc["fleet"],
                              timeout=self.settings.rollback_timeout, discovery=self.settings.discovery,
                              connect_timeout=a.connect_timeout, username=a.username, password=a.password, ca=a.ca):
                rows[r["device"]] = {"ok": r["ok"], "state": r["state"], "reason": r.get("reason")}
        bad = sorted(d for d, r in rows.items() if not r["ok"])
        self.doc["rollback"].update(ok=not bad, seconds=round(time.monotonic() - t0, 3))
        if bad:
            self.doc["reason"] += (f"; the rollback failed on {', '.join(bad)}: run `edgepack rollback --device ID` "
                                   "for them when they are reachable")
        self.doc["status"] = "stopped"
        self._save("rolled_back", None, f"rolled back {len(todo) - len(bad)} of {len(todo)} device(s)")
        self.progress("rollback", {"devices": todo, "result": self.doc["rollback"]})


def _figures(per: dict) -> dict:
    all_p = [p for periods, _ in per.values() for p in periods]
    all_w = [w for _, windows in per.values() for w in windows]
    return {"all": figures(all_p, all_w), "devices": {d: figures(p, w) for d, (p, w) in per.items()}}


def brief(f: dict) -> str:
    rate = "n/a" if f["error_rate"] is None else f"{f['error_rate']:.2%}"
    p95 = "n/a" if f["p95_ms"] is None else f"{f['p95_ms']:.3g} ms"
    drift = "n/a" if f["drift_share"] is None else f"{f['drift_share']:.0%}"
    return f"{f['calls']} calls, error rate {rate}, p95 {p95}, drift windows alerting {drift}"
