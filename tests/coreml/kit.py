"""Jobs for calling the coreml target's ``convert`` directly (what ``edgepack build`` hands it)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from edgepack_runtime.precisions import gate

from edgepack.targets.base import Job

from .harness import random_feeds


def job(model, precision: str = "fp16", profiles=(), samples: list[dict] | None = None) -> Job:
    samples = samples if samples is not None else [random_feeds(model, s) for s in range(3)]
    cal = SimpleNamespace(calib=samples, holdout=samples, all=samples)
    return Job(precision, cal, [], gate(precision), profiles=tuple(profiles))


def profile(deployment: str) -> dict:
    return {"name": f"apple-{deployment}", "os": {"minimum_deployment_target": deployment}}


def heavy_model():
    """A small CNN with real-sized weights (~0.2 M parameters) for compression ratios."""
    from onnx import helper as h

    from .harness import make, weight
    nodes = [h.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]), h.make_node("Relu", ["c2"], ["r2"]),
             h.make_node("GlobalAveragePool", ["r2"], ["g"]), h.make_node("Flatten", ["g"], ["f"]),
             h.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1)]
    inits = [weight("w1", (64, 16, 3, 3), 1, 0.1), weight("b1", (64,), 2, 0.1), weight("w2", (128, 64, 3, 3), 3, 0.05),
             weight("b2", (128,), 4, 0.1), weight("fc", (256, 128), 5, 0.1), weight("fb", (256,), 6, 0.1)]
    return make(nodes, {"x": [1, 16, 12, 12]}, ["y"], inits)


__all__ = ["job", "profile", "heavy_model", "np"]
