"""``Runtime``: open a bundle, pick a backend, run inference in the public layout.

    with Runtime.open("model.edgepack") as rt:
        outputs = rt.run({"input": x})          # or rt.run([x]) or rt.run(x)
        report = rt.self_check()                 # runs the bundle's own samples
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends import candidates, passed_over
from .compare import compare_output, within
from .bundle import Bundle
from .errors import BackendError, BundleError
from .inputs import coerce_inputs
from .precisions import tolerance


class Runtime:
    """A bundle bound to one backend and one target. Create with ``Runtime.open``."""

    def __init__(self, bundle: Bundle, target: dict, backend_name: str, session, *,
                 detail: str | None = None, reason: str | None = None):
        self.bundle, self.target, self.backend_name = bundle, target, backend_name
        self.backend_detail = detail or backend_name   # how it runs: "qnn-context", "qnn-qdq", "onnxruntime-cpu"...
        self.backend_reason = reason                   # why not something better (None: the best there is)
        self._session = session
        io = target["io"]
        self._in_order = [(e["name"], e.get("perm")) for e in io["inputs"]]
        self._out_order = [(e["name"], e.get("perm")) for e in io["outputs"]]

    @classmethod
    def open(cls, path: str | Path | Bundle, backend: str | None = None, *,
             num_threads: int | None = None, target: str | None = None) -> "Runtime":
        """Verify the bundle at ``path`` and load its best target on the best installed backend.

        ``backend`` forces a backend ("litert", "tflite-runtime", "onnxruntime", "qnn"...); ``target`` forces a
        target entry by name. BackendError says which backends and targets exist when none fits.
        ``backend_detail`` and ``backend_reason`` then say how it runs and why not in a better way.
        """
        bundle = path if isinstance(path, Bundle) else Bundle.open(path)
        failures, hints = [], []
        for spec, entry in candidates(bundle.manifest["targets"], backend, target):
            try:
                session = spec.load(bundle.read(entry["file"]), num_threads=num_threads, entry=entry, bundle=bundle)
            except BackendError as exc:
                if backend is not None:
                    raise
                failures.append(f"{spec.name}/{entry['name']} ({entry['file']}): {exc.message}")
                hints.append(exc.hint)
                continue
            why = [getattr(session, "reason", None), *failures,
                   passed_over(spec, entry["format"], forced=backend is not None)]
            return cls(bundle, entry, spec.name, session, detail=getattr(session, "detail", None) or spec.detail,
                       reason="; ".join(w for w in why if w) or None)
        same = hints and all(h == hints[0] for h in hints)   # one cause (a corrupt file): say its remedy only
        raise BackendError("no backend could load this bundle: " + "; ".join(failures),
                           hint=hints[0] if same and hints[0] else "reinstall a backend, or force one with backend=...")

    @property
    def inputs(self) -> list[dict]:
        return self.bundle.manifest["inputs"]

    @property
    def outputs(self) -> list[dict]:
        return self.bundle.manifest["outputs"]

    def run(self, inputs) -> dict[str, np.ndarray]:
        """Run once. ``inputs``: dict name->array, arrays in manifest order, or one array."""
        if self._session is None:
            raise BackendError("this Runtime is closed", hint="open a new one with Runtime.open")
        arrays = coerce_inputs(self.inputs, inputs)
        public = {spec["name"]: a for spec, a in zip(self.inputs, arrays)}
        internal = [to_model_layout(public[name], perm) for name, perm in self._in_order]
        results = self._session.run(internal)
        named = {name: from_model_layout(np.asarray(r), perm) for (name, perm), r in zip(self._out_order, results)}
        # the public dtype (Core ML, for one, returns int32 where the ONNX model's output is int64)
        return {spec["name"]: _as_dtype(named[spec["name"]], spec["dtype"]) for spec in self.outputs}

    def self_check(self, *, rtol: float | None = None, atol: float | None = None,
                   min_cosine: float | None = None) -> dict:
        """Run the bundle's samples and compare with their reference outputs.

        Tolerances: the target's recorded ``self_check`` (from the build), else the precision's default
        (see ``precisions.PRECISIONS``); explicit arguments win. Returns
        ``{"backend", "target", "samples", "passed", "tolerance", "outputs": {name: {"max_abs",
        "max_rel", "cosine", "ref_max"}}}`` with the worst figures over all samples; raises
        BundleError naming the outputs that are off.
        """
        tol = tolerance(self.target.get("precision", ""), rtol, atol, min_cosine,
                        recorded=self.target.get("self_check"))
        got_all, ref_all, failed = [], [], set()
        samples = self.bundle.samples()
        for inputs, refs in samples:
            got = self.run(inputs)
            for name, ref in refs.items():
                if np.shape(got[name]) != np.shape(ref):
                    raise BundleError(f"self-check: output {name!r} has shape {list(np.shape(got[name]))}"
                                      f" but the sample expects {list(np.shape(ref))}",
                                      hint="rebuild the bundle")
                if not within(compare_output([got[name]], [ref], task=False), tol):
                    failed.add(name)
            got_all.append(got)
            ref_all.append(refs)
        stats = {}
        for name in (ref_all[0] if ref_all else {}):
            f = compare_output([g[name] for g in got_all], [r[name] for r in ref_all], task=False)
            stats[name] = {"max_abs": f["max_abs"], "max_rel": f["rel_error"], "cosine": f["cosine"],
                           "ref_max": f["ref_max"]}
        report = {"backend": self.backend_name, "target": self.target["name"], "samples": len(samples),
                  "passed": not failed, "tolerance": tol, "outputs": stats,
                  "backend_detail": self.backend_detail, "backend_reason": self.backend_reason}
        if failed:
            detail = ", ".join(f"{n} (max_abs {stats[n]['max_abs']:.3g}, cosine {stats[n]['cosine']:.6f})"
                               for n in sorted(failed))
            raise BundleError(f"self-check failed on {self.backend_name}/{self.target['name']}: {detail}; "
                              f"tolerance rtol={tol['rtol']}, atol={tol['atol']}, "
                              f"min_cosine={tol['min_cosine']}",
                              hint="try another backend, or rebuild the bundle")
        return report

    def close(self) -> None:
        """Release the backend session (idempotent)."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        name = self.bundle.manifest["model"]["name"]
        return f"<Runtime {name} target={self.target['name']} backend={self.backend_name}>"


def to_model_layout(array: np.ndarray, perm) -> np.ndarray:
    """A public (ONNX-layout) array in the model's layout (``perm`` from the bundle's io table).

    np.require, not np.ascontiguousarray: the latter turns 0-d (scalar) inputs into shape (1,)."""
    return np.require(array if perm is None else np.transpose(array, perm), requirements="C")


def from_model_layout(array: np.ndarray, perm) -> np.ndarray:
    """A model output back in the public (ONNX) layout."""
    return array if perm is None else np.require(np.transpose(array, np.argsort(perm)), requirements="C")


def _as_dtype(array: np.ndarray, dtype: str) -> np.ndarray:
    return array if array.dtype == dtype else array.astype(dtype)
