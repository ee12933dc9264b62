"""The health gates of a rollout wave: figures of a set of telemetry periods, and the judgement new vs old.

Figures over periods (and drift windows) of a set of devices:
``error_rate`` = errors / (calls + errors) (``calls`` counts successful backend calls; the agent counts a
failed call as an error, not a call), ``p95_ms`` = the calls-weighted median of the periods' p95 (robust to
one noisy period), ``drift_share`` = share of drift windows that raised at least one alert.

Gates, in order (a wave passes when every judged gate passes):
``telemetry``  every updated device sent telemetry of the new model during the soak;
``traffic``    the new model answered at least ``min_calls`` requests (calls + errors): health is not
               judged on no traffic;
``error_rate`` new error rate <= ``max_error_rate``;
``p95_ratio``  new p95 / old p95 (the same devices before the wave) <= ``max_p95_ratio``, each p95 raised
               to ``p95_floor_ms`` first (a 0.05 -> 0.3 ms change is jitter on most hosts, not a regression);
               not judged when the devices had no latency figures before;
``drift``      new ``drift_share`` <= ``max_drift``; not judged when no drift window closed (a bundle
               without a drift baseline, or a soak shorter than the devices' drift window).
Each gate names the devices whose own figures cross its limit.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass
class Gates:
    max_error_rate: float = 0.01
    max_p95_ratio: float = 1.5
    max_drift: float = 0.2
    min_calls: int = 20
    min_periods: int = 2            # telemetry periods per device wanted before judging (soak and baseline)
    p95_floor_ms: float = 0.0       # p95 below this counts as this in the ratio (sub-ms jitter is not a regression)

    def check(self) -> None:
        from .rollout_state import RolloutError
        rules = [("max_error_rate", 0 <= self.max_error_rate <= 1, "a share in [0, 1]"),
                 ("max_p95_ratio", self.max_p95_ratio > 0, "a ratio > 0 (e.g. 1.5)"),
                 ("max_drift", 0 <= self.max_drift <= 1, "a share of drift windows in [0, 1]"),
                 ("min_calls", self.min_calls >= 0, ">= 0"), ("min_periods", self.min_periods >= 1, ">= 1"),
                 ("p95_floor_ms", 0 <= self.p95_floor_ms < 1e6, "milliseconds >= 0")]
        for name, ok, what in rules:
            value = getattr(self, name)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise RolloutError(f"--{name.replace('_', '-')} must be {what}, not {value!r}")

    def as_dict(self) -> dict:
        return asdict(self)


def weighted_median(pairs: list[tuple[float, int]]) -> float | None:
    pairs = sorted((v, w) for v, w in pairs if w > 0)
    total = sum(w for _, w in pairs)
    if not total:
        return None
    acc = 0
    for value, weight in pairs:
        acc += weight
        if acc * 2 >= total:
            return value
    return pairs[-1][0]


def figures(periods: list, windows: list) -> dict:
    """Figures of telemetry ``periods`` and drift ``windows`` (see the module doc)."""
    calls = sum(p.calls for p in periods)
    errors = sum(p.errors for p in periods)
    alerting = sum(1 for w in windows if w.alerts)
    p95 = weighted_median([(p.p95, p.calls) for p in periods if p.p95 is not None])
    return {"periods": len(periods), "calls": calls, "errors": errors,
            "error_rate": _round(errors / (calls + errors)) if calls + errors else None,
            "p95_ms": _round(p95), "drift_windows": len(windows), "drift_alert_windows": alerting,
            "drift_share": _round(alerting / len(windows)) if windows else None}


def _round(x):
    return None if x is None else round(float(x), 6)


def judge(old: dict, new: dict, gates: Gates) -> dict:
    """``old``/``new``: {"all": figures, "devices": {device: figures}}. Returns the decision document."""
    checks = [_telemetry(new), _traffic(new, gates), _errors(old, new, gates), _latency(old, new, gates),
              _drift(old, new, gates)]
    failed = [c for c in checks if c["judged"] and not c["passed"]]
    return {"passed": not failed, "gates": checks, "failed": [c["gate"] for c in failed],
            "reason": "; ".join(f"{c['gate']} gate: {c['why']}" for c in failed) or None}


def _gate(name: str, passed: bool, why: str, *, judged: bool = True, **figures) -> dict:
    return {"gate": name, "passed": passed, "judged": judged, "why": why, **figures}


def _over(new: dict, key: str, limit: float) -> list[str]:
    """Devices whose own ``key`` figure crosses ``limit``."""
    return sorted(d for d, f in new["devices"].items() if f[key] is not None and f[key] > limit)


def _telemetry(new: dict) -> dict:
    silent = sorted(d for d, f in new["devices"].items() if not f["periods"])
    why = (f"no telemetry of the new model from {', '.join(silent)} during the soak" if silent
           else "every device reported")
    return _gate("telemetry", not silent, why, devices=silent)


def _traffic(new: dict, g: Gates) -> dict:
    n = new["all"]["calls"] + new["all"]["errors"]
    why = (f"the new model served {n} request(s) during the soak, fewer than --min-calls {g.min_calls}: health cannot "
           "be judged (lengthen --soak)") if n < g.min_calls else f"{n} requests"
    return _gate("traffic", n >= g.min_calls, why, value=n, limit=g.min_calls)


def _errors(old: dict, new: dict, g: Gates) -> dict:
    rate = new["all"]["error_rate"]
    if rate is None:
        return _gate("error_rate", True, "no requests", judged=False, value=None, limit=g.max_error_rate)
    bad = _over(new, "error_rate", g.max_error_rate)
    base = old["all"]["error_rate"]
    why = (f"error rate {rate:.2%} ({new['all']['errors']} errors / {new['all']['calls'] + new['all']['errors']} "
           f"requests; limit {g.max_error_rate:.2%})" + (f" (previous model: {base:.2%})" if base is not None else "")
           + (f" on {', '.join(bad)}" if bad else ""))
    return _gate("error_rate", rate <= g.max_error_rate, why, value=rate, limit=g.max_error_rate, baseline=base,
                 devices=bad)


def _latency(old: dict, new: dict, g: Gates) -> dict:
    p_new, p_old = new["all"]["p95_ms"], old["all"]["p95_ms"]
    if p_new is None or not p_old:
        why = "no latency figures " + ("of the new model" if p_new is None else
                                       "of the previous model on these devices")
        return _gate("p95_ratio", True, why, judged=False, value=None, limit=g.max_p95_ratio, new_ms=p_new,
                     old_ms=p_old)
    floor = g.p95_floor_ms
    ratio = max(p_new, floor) / max(p_old, floor)
    bad = []
    for d, f in new["devices"].items():
        base = old["devices"].get(d, {}).get("p95_ms")
        if f["p95_ms"] is not None and base and max(f["p95_ms"], floor) / max(base, floor) > g.max_p95_ratio:
            bad.append(d)
    why = (f"p95 latency {p_new:.3g} ms is {ratio:.3g}x the previous model's {p_old:.3g} ms on the same devices "
           f"(limit {g.max_p95_ratio:g}x" + (f"; latencies under {floor:g} ms count as {floor:g} ms" if floor else "")
           + ")" + (f" on {', '.join(sorted(bad))}" if bad else ""))
    return _gate("p95_ratio", ratio <= g.max_p95_ratio, why, value=round(ratio, 4), limit=g.max_p95_ratio,
                 new_ms=p_new, old_ms=p_old, devices=sorted(bad))


def _drift(old: dict, new: dict, g: Gates) -> dict:
    share = new["all"]["drift_share"]
    if share is None:
        return _gate("drift", True, "no drift window closed during the soak", judged=False, value=None,
                     limit=g.max_drift)
    bad = _over(new, "drift_share", g.max_drift)
    base = old["all"]["drift_share"]
    why = (f"{new['all']['drift_alert_windows']} of {new['all']['drift_windows']} drift windows ({share:.0%}) raised "
           f"alerts: the traffic is not distributed as the new bundle's drift baseline says (limit {g.max_drift:.0%}"
           + (f"; previous model: {base:.0%}" if base is not None else "") + ")"
           + (f" on {', '.join(bad)}" if bad else ""))
    return _gate("drift", share <= g.max_drift, why, value=share, limit=g.max_drift, baseline=base, devices=bad)
