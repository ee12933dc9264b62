"""Deployment targets as data: Core ML's opset levels (iOS16 ⊂ iOS17 ⊂ iOS18) and the macOS releases
that carry the same level. A device profile names one in ``[os] minimum_deployment_target``."""
from __future__ import annotations

from ...errors import EdgepackError

# name -> (level, the coremltools target it maps to)
DEPLOYMENT = {"iOS16": 16, "iOS17": 17, "iOS18": 18, "macOS13": 16, "macOS14": 17, "macOS15": 18,
              "tvOS16": 16, "tvOS17": 17, "tvOS18": 18, "watchOS9": 16, "watchOS10": 17, "watchOS11": 18,
              "visionOS1": 17, "visionOS2": 18}
LEVEL_NAME = {16: "iOS16", 17: "iOS17", 18: "iOS18"}
DEFAULT = "iOS16"


def level(name: str) -> int:
    if name not in DEPLOYMENT:
        raise EdgepackError(f"unknown Core ML deployment target '{name}'",
                            hint=f"one of: {', '.join(DEPLOYMENT)}")
    return DEPLOYMENT[name]


def ct_target(name: str):
    """The ``coremltools.target`` member for a deployment name (macOS14 -> iOS17's level)."""
    import coremltools as ct
    return getattr(ct.target, LEVEL_NAME[level(name)])


def from_profiles(profiles) -> str:
    """The oldest deployment target among the profiles that asked for the target (all must run it)."""
    named = [p.get("os", {}).get("minimum_deployment_target") for p in profiles]
    named = [n for n in named if n]
    for n in named:
        level(n)
    return min(named, key=level) if named else DEFAULT
