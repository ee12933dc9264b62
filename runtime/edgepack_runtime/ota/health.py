"""The health check of a freshly installed slot, and the device-profile rule.

``check(path, budget_ms=...)`` opens the bundle with the real backend (``Runtime.open``), runs its samples
against their reference outputs (``Runtime.self_check``) and times inference on the first sample (one
warm-up call, then the median of ``runs`` calls) against the latency budget. It never raises for a bad
model: the result says ``passed`` and, when not, ``reason``.

Device-profile rule (``suits``): a target entry suits the device's profile when the entry says
``"portable": true``, or lists the profile in ``devices`` (the host writes every profile it knew for a
portable target such as ``cpu``/tflite), or has no ``devices`` list at all (bundles made without profile
data make no claim). A bundle is refused when none of its targets suits the profile; a device with no
``profile`` set accepts every bundle.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from ..bundle import Bundle
from ..errors import EdgepackError


def suitable_targets(manifest: dict, profile: str | None) -> list[str]:
    """Names of the targets of ``manifest`` that suit ``profile`` (all of them when profile is None)."""
    out = []
    for entry in manifest.get("targets", []):
        devices = entry.get("devices")
        if profile is None or entry.get("portable") is True or devices is None or (
                isinstance(devices, list) and profile in devices):
            out.append(entry["name"])
    return out


def suits(manifest: dict, profile: str | None) -> str | None:
    """None when the bundle suits ``profile``, else the reason it does not."""
    if suitable_targets(manifest, profile):
        return None
    listed = sorted({d for t in manifest.get("targets", []) for d in (t.get("devices") or []) if isinstance(d, str)})
    return (f"bundle {manifest['model']['name']} {manifest['model']['version']} is not built for device profile "
            f"{profile!r}: its targets suit {', '.join(listed[:10]) or 'no profile'}; rebuild with "
            f"`edgepack build --target {profile}` or a portable target")


def check(path: Path | Bundle, *, budget_ms: float | None = None, backend: str | None = None,
          targets: list[str] | None = None, runs: int = 5) -> dict:
    """Health figures of the bundle at ``path`` (or an opened ``Bundle``): ``{"passed", "reason", "backend", "target", "samples",
    "latency_ms": {"median", "max"}, "budget_ms", "outputs"}`` (see the module docstring)."""
    from ..runtime import Runtime
    report = {"passed": False, "reason": None, "backend": None, "target": None, "samples": 0,
              "latency_ms": None, "budget_ms": budget_ms, "outputs": None}
    try:
        rt = _open(Runtime, path, backend, targets)
    except EdgepackError as exc:
        report["reason"] = f"the new bundle does not load: {exc}"
        return report
    except Exception as exc:  # noqa: BLE001 - a backend's own failure is a failed check, not a crash
        report["reason"] = f"the new bundle does not load: {type(exc).__name__}: {str(exc)[:300]}"
        return report
    with rt:
        report.update(backend=rt.backend_name, target=rt.target["name"])
        try:
            _examine(rt, report, budget_ms, runs)
        except EdgepackError as exc:
            report["reason"] = exc.message
        except Exception as exc:  # noqa: BLE001
            report["reason"] = f"inference failed: {type(exc).__name__}: {str(exc)[:300]}"
    return report


def _open(Runtime, path, backend, targets):
    last = None
    for name in (targets or [None]):
        try:
            return Runtime.open(path, backend, target=name)
        except EdgepackError as exc:
            last = exc
    raise last


def _examine(rt, report: dict, budget_ms: float | None, runs: int) -> None:
    samples = rt.bundle.samples()
    report["samples"] = len(samples)
    if not samples:
        report["reason"] = "the bundle carries no samples, so the device cannot check its answers; rebuild it"
        return
    result = rt.self_check()
    report["outputs"] = result["outputs"]
    inputs = samples[0][0]
    rt.run(inputs)                                   # warm-up: first-call costs are not the model's latency
    times = []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        rt.run(inputs)
        times.append((time.perf_counter() - t0) * 1e3)
    median = statistics.median(times)
    report["latency_ms"] = {"median": round(median, 4), "max": round(max(times), 4)}
    if budget_ms is not None and median > budget_ms:
        report["reason"] = (f"latency {median:.3f} ms (median of {len(times)} runs) is over the {budget_ms:g} ms "
                            "budget")
        return
    report["passed"] = True
