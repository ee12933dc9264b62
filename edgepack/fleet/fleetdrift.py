"""Fleet-wide drift from the devices' own window summaries (``edgepack_runtime.drift.fleet_drift``).

A device reports counts over its bundle's baseline bin edges, never the baseline itself, so the host judges
merged counts against the baseline read from the bundle (``baseline_of(path)``: ``edgepack fleet drift
--bundle``). Only summaries from devices that ran that very bundle (same ``bundle_sha256`` in their telemetry)
and whose counts fit the baseline's bins are merged; the others are listed as skipped, with the reason.
Without a bundle the report still merges counts per model and lists each device's own alerts.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgepack_runtime.drift import Thresholds, fleet_drift, merge_summaries

from ..errors import BundleError

__all__ = ["Baseline", "baseline_of", "fleet_report"]


class Baseline(dict):
    """The drift baseline of one bundle (a dict) with ``model``, ``version`` and ``bundle_sha256``."""
    model: str | None = None
    version: str | None = None
    bundle_sha256: str | None = None


def baseline_of(path: str | Path) -> Baseline:
    """The drift baseline inside bundle ``path`` (the devices' summaries count over its bins)."""
    from edgepack_runtime.bundle import Bundle
    bundle = Bundle.open(path)
    rel = bundle.manifest.get("drift_baseline")
    if not rel:
        raise BundleError(f"bundle {path} has no drift baseline, so its devices report no drift",
                          hint="build it with calibration data (edgepack build --calibration ...)")
    out = Baseline(json.loads(bundle.read(rel)))
    out.model, out.version = bundle.manifest["model"]["name"], bundle.manifest["model"]["version"]
    out.bundle_sha256 = hashlib.sha256(bundle.manifest_bytes).hexdigest()
    return out


def _misfit(entry: dict, baseline: dict, sha: str | None) -> str | None:
    """Why a device summary cannot be merged against ``baseline`` (None when it can)."""
    if sha and entry.get("bundle_sha256") and entry["bundle_sha256"] != sha:
        return f"ran bundle {entry['bundle_sha256'][:12]}, not {sha[:12]}"
    tensors = entry["summary"].get("tensors", {})
    for kind in ("inputs", "outputs"):
        for name, stats in baseline.get(kind, {}).items():
            if name in tensors and len(tensors[name]["counts"]) != len(stats["counts"]):
                return f"tensor {name!r} has {len(tensors[name]['counts'])} bins, the baseline {len(stats['counts'])}"
    if not any(name in tensors for kind in ("inputs", "outputs") for name in baseline.get(kind, {})):
        return "no tensor of the baseline in its summary"
    return None


def fleet_report(entries: list[dict], *, baseline: Baseline | dict | None = None,
                 thresholds: Thresholds | None = None) -> dict:
    """``entries``: ``{"device", "fleet", "model", "version", "bundle_sha256", "summary"}`` per device window.

    With ``baseline``: ``fleet_drift`` over the entries that fit it, plus ``skipped``. Without: per model,
    the devices, calls and merged counts, and every device's own alerts."""
    devices = [{"device": e["device"], "fleet": e["fleet"], "model": e.get("model"), "version": e.get("version"),
                "calls": e["summary"].get("calls", 0), "alerts": e["summary"].get("alerts", [])}
               for e in entries]
    if baseline is None:
        models: dict[str, list] = {}
        for e in entries:
            models.setdefault(e.get("model") or "?", []).append(e["summary"])
        merged = {m: {"devices": len(s), "calls": sum(x.get("calls", 0) for x in s), "counts": merge_summaries(s)}
                  for m, s in sorted(models.items())}
        return {"judged": False, "models": merged, "device_alerts": devices,
                "note": "counts merged, not judged: give the bundle (--bundle) to judge them against its baseline"}
    sha = getattr(baseline, "bundle_sha256", None)
    fit, skipped = [], []
    for e in entries:
        why = _misfit(e, baseline, sha)
        if why:
            skipped.append({"device": e["device"], "fleet": e["fleet"], "reason": why})
        else:
            fit.append(e["summary"])
    report = fleet_drift(baseline, fit, thresholds)
    notes = sorted({s["note"] for s in fit if s.get("note")})
    return {"judged": True, "model": getattr(baseline, "model", None), "version": getattr(baseline, "version", None),
            "bundle_sha256": sha, **report, "skipped": skipped, "device_alerts": devices,
            **({"note": notes[0]} if notes else {})}
