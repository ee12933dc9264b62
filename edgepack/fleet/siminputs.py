"""Requests for simulated devices: a pool of input sets, and drift applied from a given time on.

Where the pool comes from, best first:
1. ``inputs``: an ``.npz`` of real data, one array per model input (by name, or ``input_0``...), samples
   along a leading axis (``[N, *shape]``, or ``[N, ...]`` when the model's batch dimension is 1);
2. the bundle's drift baseline: every value of every float input drawn from the baseline's own histogram
   bins (quantile bins, so uniformly over the bins, uniform within each), so a device that does not drift
   looks like the calibration data to its drift monitor, input by input. Only the per-value marginals are
   matched, not the structure between values: outputs of such inputs (an image model's class mix, say) may
   differ from the baseline's, so pass real ``inputs`` when output drift matters;
3. the bundle's few health-check samples (drift windows will then alert: three samples are not a
   distribution).
Drifting devices send ``x * scale + shift * std`` (``std`` of the input's baseline, or of the pool).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import EdgepackError

POOL_BYTES = 64 * 2 ** 20          # synthetic pool size cap (for large inputs the pool gets smaller)


class InputStream:
    """``draw(rng, drifting, now)``: one request's inputs; drift starts at ``at`` (monotonic time)."""

    def __init__(self, pool: list[dict], std: dict, *, shift: float = 0.0, scale: float = 1.0, at: float = 0.0,
                 source: str = ""):
        if not pool:
            raise EdgepackError("no inputs to draw requests from", hint="pass --inputs FILE.npz")
        self.pool, self.std, self.shift, self.scale, self.at, self.source = pool, std, shift, scale, at, source

    def draw(self, rng: np.random.Generator, drifting: bool, now: float) -> dict:
        sample = self.pool[int(rng.integers(len(self.pool)))]
        if not drifting or now < self.at or (self.shift == 0 and self.scale == 1):
            return sample
        return {k: v if self.std.get(k) is None else (v * self.scale + self.shift * self.std[k]).astype(v.dtype)
                for k, v in sample.items()}


def input_stream(bundle, inputs: Path | None, *, seed: int, **drift) -> InputStream:
    """The best pool this bundle (and ``inputs``) allow; see the module docstring."""
    specs = bundle.manifest["inputs"]
    baseline = _baseline(bundle)
    if inputs is not None:
        pool, source = from_npz(Path(inputs), specs), f"{inputs}"
    elif baseline and all(s["name"] in baseline.get("inputs", {}) or np.dtype(s["dtype"]).kind != "f" for s in specs):
        pool, source = from_baseline(baseline["inputs"], specs, bundle, np.random.default_rng([seed, 7])), \
            "the drift baseline's bins"
    else:
        pool, source = [inp for inp, _ in bundle.samples()], "the bundle's samples"
    std = {s["name"]: _std(s["name"], baseline, pool) for s in specs if np.dtype(s["dtype"]).kind == "f"}
    return InputStream(pool, std, source=source, **drift)


def _baseline(bundle) -> dict | None:
    rel = bundle.manifest.get("drift_baseline")
    return json.loads(bundle.read(rel)) if rel else None


def _std(name: str, baseline: dict | None, pool: list[dict]) -> float:
    stated = ((baseline or {}).get("inputs", {}).get(name) or {}).get("std")
    return float(stated) if stated else float(np.std([p[name] for p in pool])) or 1.0


def from_baseline(stats: dict, specs: list[dict], bundle, rng: np.random.Generator) -> list[dict]:
    """Input sets whose float values follow the baseline's bins; other inputs copied from the bundle's samples."""
    shapes = {s["name"]: [d if d > 0 else 1 for d in s["shape"]] for s in specs}
    per_set = sum(int(np.prod(shape)) * 4 for shape in shapes.values()) or 1
    n = int(np.clip(POOL_BYTES // per_set, 8, 256))
    fixed = bundle.samples()[0][0] if any(s["name"] not in stats for s in specs) else {}
    pool = [{} for _ in range(n)]
    for s in specs:
        name = s["name"]
        if name not in stats:
            for p in pool:
                p[name] = fixed[name]
            continue
        values = _from_bins(stats[name], n * int(np.prod(shapes[name])), rng)
        for i, p in enumerate(pool):
            p[name] = values[i::n].reshape(shapes[name]).astype(s["dtype"])
    return pool


def _from_bins(st: dict, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` values spread over the histogram ``st`` (inner ``edges``, ``counts``) like its data."""
    edges, counts = np.asarray(st["edges"], np.float64), np.asarray(st["counts"], np.float64)
    if edges.size == 0:
        return np.full(count, float(st.get("mean", 0.0)))
    width = float(np.median(np.diff(edges))) if edges.size > 1 else max(float(st.get("std", 1.0)), 1e-6)
    lo = np.concatenate([[edges[0] - width], edges])           # open-ended outer bins get one typical width
    hi = np.concatenate([edges, [edges[-1] + width]])
    pick = rng.choice(len(counts), size=count, p=counts / counts.sum())
    return lo[pick] + (hi[pick] - lo[pick]) * rng.random(count)


def from_npz(path: Path, specs: list[dict]) -> list[dict]:
    """Input sets from an ``.npz`` (see the module docstring), checked against the model's inputs."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise EdgepackError(f"cannot read inputs {path}: {exc}", hint="pass an .npz written with numpy.savez") from None
    rows = {}
    for i, s in enumerate(specs):
        a = arrays.get(s["name"], arrays.get(f"input_{i}"))
        if a is None:
            raise EdgepackError(f"inputs {path} has no array {s['name']!r} (nor input_{i}); it has {sorted(arrays)}")
        shape = s["shape"]
        if a.ndim == len(shape) and shape and shape[0] in (1, -1):
            a = a[:, None] if len(shape) == 1 else a.reshape(a.shape[0], 1, *a.shape[1:])
        if a.ndim != len(shape) + 1 or any(d > 0 and d != g for d, g in zip(shape, a.shape[1:])):
            raise EdgepackError(f"inputs {path}: {s['name']!r} has shape {list(a.shape)}, not [N, *{shape}]",
                                hint="stack one request per row along a leading axis")
        rows[s["name"]] = a.astype(s["dtype"], copy=False)
    n = min(len(a) for a in rows.values())
    return [{k: a[i] for k, a in rows.items()} for i in range(n)]
