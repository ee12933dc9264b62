"""``edgepack rollout``: a staged rollout of a bundle over a fleet, gated on the health of the new model.

    doc = start_rollout("m.edgepack", broker="mqtt://10.0.0.2:1883", fleet="lab", state="r.json",
                        settings=RolloutSettings(canary="10%", waves="25%,50%,100%", soak=300,
                                                 gates=Gates(max_error_rate=0.01, max_p95_ratio=1.5, max_drift=0.2)))
    doc = resume_rollout("r.json")        # after a restart or a kill: goes on where it stopped
    doc["status"]                         # "completed" | "stopped" (a gate failed; updated devices rolled back)

The fleet is read through the monitor's ingest (``ingest.Monitor`` + ``rollout_watch.Observer``). The plan
splits the devices that announced flash support into the canary and the waves (``rollout_state``). Each wave:

1. **baseline**: the wave's devices' telemetry of the model they serve now, over the last ``baseline_window``
   seconds (live, plus ``history`` when given); waits up to ``baseline_wait`` for ``min_periods`` periods each;
2. (``require_shadow``) a shadow period first (``rollout_shadow``);
3. **flash**: ``fleet.flash.flash`` to the wave's devices (a device already serving the bundle is not
   flashed again); a device that does not commit stops the rollout;
4. **soak**: ``soak`` seconds (up to ``soak_max`` while some device has sent fewer than ``min_periods``
   periods of the new model), then the gates (``rollout_gates``): pass -> next wave, fail -> stop.

Stopping rolls back every device this rollout updated (``fleet.rollback``: each returns to its previous slot)
and says why: which gate, which devices, which figures. Every step is written to the state file first.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from edgepack_runtime.bundle import Bundle

from .rollout_gates import Gates, figures, judge
from .rollout_state import RolloutError, StateLock, file_sha256, load, parse_share, parse_waves, plan_waves, save
from .rollout_watch import Observer, history_periods, model_id

Progress = Callable[[str, dict], None]


@dataclass
class RolloutSettings:
    """Everything a rollout needs besides the bundle, the broker and the fleet (kept in the state file)."""
    canary: str = "10%"
    waves: str = "25%,50%,100%"
    gates: Gates = field(default_factory=Gates)
    soak: float = 300.0                  # seconds of telemetry of the new model per wave
    soak_max: float | None = None        # longest soak while telemetry is missing (default 2 x soak)
    baseline_window: float = 900.0       # seconds of the previous model's telemetry used as a wave's baseline
    baseline_wait: float | None = None   # longest wait for that baseline (default: soak)
    discovery: float = 2.0               # seconds to collect the retained announcements
    flash_timeout: float = 600.0
    rollback_timeout: float = 60.0
    budget_ms: float | None = None       # health-check latency budget sent with the flash
    history: str | None = None           # sqlite:///... | postgresql://... for baselines older than the process
    require_shadow: float | None = None  # seconds of shadow running before each wave is flashed (M4's shadow)
    shadow_share: float = 0.1            # share of requests the shadow sees
    shadow_min_samples: int = 100        # shadow judgement (edgepack.fleet.shadow.judge)
    shadow_min_cosine: float = 0.999
    shadow_min_top1: float = 0.99
    shadow_max_p95_ratio: float | None = None   # off by default: a shadow runs niced; the soak judges latency

    def check(self) -> None:
        self.gates.check()
        parse_share(self.canary, "--canary")
        parse_waves(self.waves)
        for name in ("soak", "baseline_window", "discovery", "flash_timeout", "rollback_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < 1e7):
                raise RolloutError(f"--{name.replace('_', '-')} must be seconds in [0, 1e7), not {value!r}")
        if self.require_shadow is not None and not 0 < self.require_shadow < 1e7:
            raise RolloutError(f"--require-shadow must be seconds > 0, not {self.require_shadow!r}")
        if not (0 < self.shadow_share <= 1 and self.shadow_min_samples >= 0 and 0 <= self.shadow_min_cosine <= 1
                and 0 <= self.shadow_min_top1 <= 1):
            raise RolloutError("--shadow-share must be in (0, 1], --shadow-min-samples >= 0, --shadow-min-cosine and "
                               "--shadow-min-top1 in [0, 1]")

    def to_doc(self) -> dict:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict) -> "RolloutSettings":
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__ and k != "gates"}
        return cls(gates=Gates(**{k: v for k, v in (doc.get("gates") or {}).items()
                                  if k in Gates.__dataclass_fields__}), **known)


@dataclass
class Auth:
    """Broker credentials: given on every run, never written to the state file."""
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    connect_timeout: float = 10.0


def describe(path: Path) -> dict:
    """What the state file records about the bundle (and what a resume checks again)."""
    from .flash import describe_bundle
    path = Path(path)
    if not path.is_file():
        raise RolloutError(f"{path} is not a bundle file",
                           hint="rollout sends the .edgepack file `edgepack build` writes")
    info = describe_bundle(path)
    manifest_sha = hashlib.sha256(Bundle.open(path).manifest_bytes).hexdigest()
    return {"path": str(path.resolve()), "sha256": file_sha256(path), "manifest_sha256": manifest_sha,
            "model": info["model"], "model_id": model_id(info["model"]["name"], info["model"]["version"]),
            "profiles": info["profiles"]}


def start_rollout(bundle: str | Path, *, broker: str, fleet: str, state: str | Path,
                  settings: RolloutSettings | None = None, auth: Auth | None = None,
                  progress: Progress | None = None) -> dict:
    """Plan and run a rollout (see the module doc); returns the final state document."""
    settings = settings or RolloutSettings()
    settings.check()
    state = Path(state)
    if state.exists():
        raise RolloutError(f"rollout state {state} exists already",
                           hint="continue it with --resume --state FILE, or name a new --state file")
    if settings.require_shadow is not None:
        from .rollout_shadow import available
        available()
    info = describe(Path(bundle))
    state.parent.mkdir(parents=True, exist_ok=True)
    from .rollout_run import Run
    with StateLock(state):
        return Run(state, None, broker, auth or Auth(), progress).start(info, fleet, settings)


def resume_rollout(state: str | Path, *, broker: str | None = None, auth: Auth | None = None,
                   progress: Progress | None = None) -> dict:
    """Go on with the rollout of ``state`` (``broker`` overrides the recorded one)."""
    state = Path(state)
    from .rollout_run import Run
    with StateLock(state):
        doc = load(state)
        path = Path(doc["bundle"]["path"])
        if not path.is_file() or file_sha256(path) != doc["bundle"]["sha256"]:
            raise RolloutError(f"the bundle {path} is missing or changed since the rollout started",
                               hint="put the original bundle back, or start a new rollout with another --state")
        return Run(state, doc, broker or doc["broker"], auth or Auth(), progress).resume()


def wait_until(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


__all__ = ["Auth", "Gates", "RolloutError", "RolloutSettings", "figures", "history_periods", "judge",
           "plan_waves", "resume_rollout", "save", "start_rollout", "wait_until", "Observer"]
