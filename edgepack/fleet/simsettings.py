"""The settings of ``edgepack fleet simulate`` (``SimSettings``), checked before anything starts."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from ..errors import EdgepackError
from .aclgen import ID


@dataclass
class SimSettings:
    """What ``fleet simulate`` takes; see the module docstring for the faults' meaning."""
    devices: int
    bundle: Path
    broker: str
    fleet: str = "sim"
    duration: float | None = 60.0          # None: until stop()
    rate: float = 2.0                      # requests per second per device
    telemetry_interval: float = 5.0
    drift_window: float = 10.0             # seconds per drift window
    drift: float = 0.0
    drift_scale: float = 1.0
    drift_at: float = 0.0
    drift_share: float = 1.0
    latency_spikes: float = 0.0
    spike_ms: float = 100.0
    crash_rate: float = 0.0
    crash_downtime: float = 5.0
    network_cuts: float = 0.0
    cut_seconds: float = 3.0
    seed: int = 0
    inputs: Path | None = None             # .npz of real inputs (else the drift baseline's bins, see siminputs)
    relay: bool | None = None              # the fault relay (None: when crash_rate or network_cuts is set)
    runtimes: int = 0                      # 0: one per CPU (at most one per device)
    backend: str | None = None
    prefix: str = "sim-"
    workdir: Path | None = None
    power_watts: float | None = None
    cost_per_hour: float | None = None
    username: str | None = None
    password: str | None = None
    passwords: dict = field(default_factory=dict)   # device id -> password (user name = device id)
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    ota: bool = False                      # each device an A/B state folder: takes `edgepack flash` updates
    profile: str | None = None             # the device profile the devices announce (flash checks it)
    trust_keys: tuple = ()                 # public key files: serve and install only bundles they signed

    def check(self) -> None:
        """Refuse impossible settings with what to change."""
        rules = [("devices", 1 <= self.devices <= 100_000, "in [1, 100000]"), ("rate", 0 <= self.rate <= 10_000,
                 "in [0, 10000] requests/s"), ("telemetry_interval", 0.1 <= self.telemetry_interval <= 86400,
                 "in [0.1, 86400] s"), ("drift_window", 1 <= self.drift_window, "at least 1 s"),
                 ("drift_share", 0 <= self.drift_share <= 1, "in [0, 1]"),
                 ("latency_spikes", 0 <= self.latency_spikes <= 1, "a share in [0, 1]"),
                 ("spike_ms", 0 <= self.spike_ms <= 60_000, "in [0, 60000] ms"),
                 ("crash_rate", 0 <= self.crash_rate <= 60, "in [0, 60] per device per minute"),
                 ("network_cuts", 0 <= self.network_cuts <= 60, "in [0, 60] per device per minute"),
                 ("duration", self.duration is None or self.duration > 0, "positive"),
                 ("crash_downtime", 0 < self.crash_downtime <= 86400, "in (0, 86400] s"),
                 ("cut_seconds", 0 < self.cut_seconds <= 86400, "in (0, 86400] s"),
                 ("drift_at", 0 <= self.drift_at <= 30 * 86400, "in [0, 2592000] s"),
                 ("drift", math.isfinite(self.drift), "a finite number"),
                 ("drift_scale", math.isfinite(self.drift_scale), "a finite number"),
                 ("runtimes", 0 <= self.runtimes <= 1024, "in [0, 1024]"),
                 ("prefix", ID.fullmatch(f"{self.prefix}0001") is not None, "letters, digits, '_', '.', '-'")]
        for name, ok, what in rules:
            if not ok:
                raise EdgepackError(f"simulate: {name} must be {what}, not {getattr(self, name)!r}")
        url = urlparse(self.broker)
        if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
            raise EdgepackError(f"simulate: broker must look like mqtt://HOST:PORT, not {self.broker!r}")
