"""Energy and money per 1,000 predictions, from a telemetry period and the device's stated power and price.

The figures are computed over the period's **wall time**, not its busy time: a device draws power and is
paid for every second it runs, whether it is inferring or waiting for the next request. Dividing by busy
time would report what a fully loaded device costs, a figure an idle-heavy fleet never pays; over wall time
the figure is what the period really cost per prediction, and it falls as the device gets busier (its floor
is what ``edgepack-device bench`` measures: back-to-back calls, busy time = wall time). ``busy_share`` (the
fraction of the period spent in backend calls) says how far from that floor a device runs.

    power_watts    average draw of the whole device while the agent runs (measure it at the wall)
    cost_per_hour  what one device-hour costs (rent, amortised hardware, energy, in your currency)
"""
from __future__ import annotations

import math


def predictions(snap: dict) -> int:
    """Answers given in the period: requests served through the queue (cache hits and micro-batched rows
    included), or backend calls when the agent was called directly (``Agent.run``)."""
    return max(int(snap.get("requests") or 0), int(snap.get("calls") or 0))


def busy_seconds(snap: dict) -> float:
    """Time spent in backend calls during the period (mean latency x calls)."""
    return (snap.get("latency_ms") or {}).get("mean", 0.0) * (snap.get("calls") or 0) / 1e3


def per_1k(amount_per_second: float, seconds: float, n: int) -> float | None:
    """``amount_per_second`` spent over ``seconds``, per 1,000 of ``n`` predictions (None when there were none)."""
    if n <= 0 or not math.isfinite(seconds) or seconds <= 0:
        return None
    return amount_per_second * seconds / n * 1000.0


def cost_fields(snap: dict, *, power_watts: float | None = None, cost_per_hour: float | None = None) -> dict:
    """The telemetry fields added to a period ``snap`` (``Telemetry.snapshot()``): ``busy_share`` always;
    ``energy_j_per_1k`` (joules) when ``power_watts`` is set; ``cost_per_1k`` when ``cost_per_hour`` is set.
    A period without predictions has None for both (nothing was predicted, the cost is not per anything)."""
    period, n = float(snap.get("period_s") or 0.0), predictions(snap)
    out = {"busy_share": min(1.0, busy_seconds(snap) / period) if period > 0 else None}
    if power_watts is not None:
        out["energy_j_per_1k"] = per_1k(power_watts, period, n)
    if cost_per_hour is not None:
        out["cost_per_1k"] = per_1k(cost_per_hour / 3600.0, period, n)
    return out
