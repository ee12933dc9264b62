"""Backend registry and selection.

A backend is data (``BackendSpec``): its name, the target formats it runs, the top-level module whose
presence says it is installed (found with ``importlib.util.find_spec``, so probing never imports it), the
pip requirement to suggest, and a loader imported only when the backend is used. ``PREFERENCE`` orders
backends from most to least specialised; names in it that are not registered yet (coreml, qnn) are
skipped.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from ..errors import BackendError

PREFERENCE = ("coreml", "qnn", "litert", "tflite-runtime", "onnxruntime")


@dataclass(frozen=True)
class BackendSpec:
    """A runnable backend: ``loader`` is "module:function" returning a Session for (model, num_threads)."""

    name: str
    formats: tuple[str, ...]
    module: str
    pip: str
    loader: str

    def available(self) -> bool:
        """Whether the backend's package is installed (cheap: does not import it)."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def load(self, model: bytes, *, num_threads: int | None = None):
        """Import the backend and build a Session running ``model``."""
        module, func = self.loader.split(":")
        try:
            make = getattr(importlib.import_module(module, __package__), func)
            return make(model, num_threads=num_threads)
        except ImportError as exc:
            raise BackendError(f"backend {self.name} failed to import: {exc}",
                               hint=f"reinstall it with `pip install {self.pip}`") from exc


BACKENDS: dict[str, BackendSpec] = {}


def register(spec: BackendSpec) -> BackendSpec:
    """Add a backend to the registry; registering a name twice is an error."""
    if spec.name in BACKENDS:
        raise ValueError(f"backend {spec.name!r} is already registered")
    BACKENDS[spec.name] = spec
    return spec


register(BackendSpec("litert", ("tflite",), "ai_edge_litert", "ai-edge-litert", ".tflite:load_litert"))
register(BackendSpec("tflite-runtime", ("tflite",), "tflite_runtime", "tflite-runtime",
                     ".tflite:load_tflite_runtime"))
register(BackendSpec("onnxruntime", ("onnx",), "onnxruntime", "onnxruntime", ".ort:load_onnxruntime"))


def ordered() -> list[BackendSpec]:
    """Registered backends in preference order."""
    ranked = [BACKENDS[n] for n in PREFERENCE if n in BACKENDS]
    return ranked + [s for n, s in BACKENDS.items() if n not in PREFERENCE]


def candidates(targets: list[dict], backend: str | None = None,
               target: str | None = None) -> list[tuple[BackendSpec, dict]]:
    """(backend, target entry) pairs able to run this bundle, best first; BackendError if none.

    ``backend`` forces one backend; ``target`` restricts to one target entry by name.
    """
    pool = _pick_targets(targets, target)
    if backend is not None:
        spec = _known(backend)
        if not spec.available():
            raise BackendError(f"backend {backend} is not installed",
                               hint=f"pip install {spec.pip} (or edgepack-runtime[{_extra(spec)}])")
        pairs = [(spec, t) for t in pool if t["format"] in spec.formats]
        if not pairs:
            raise BackendError(f"backend {backend} runs {'/'.join(spec.formats)} targets but the bundle "
                               f"has {_describe(pool)}", hint=_suggest(pool))
        return pairs
    pairs = [(spec, t) for spec in ordered() if spec.available()
             for t in pool if t["format"] in spec.formats]
    if not pairs:
        raise BackendError(f"no installed backend runs this bundle's targets ({_describe(pool)}); "
                           f"installed: {', '.join(s.name for s in ordered() if s.available()) or 'none'}",
                           hint=_suggest(pool))
    return pairs


def _pick_targets(targets, target):
    if target is None:
        return list(targets)
    pool = [t for t in targets if t["name"] == target]
    if not pool:
        raise BackendError(f"bundle has no target {target!r}; it has {_describe(targets)}",
                           hint="pick one of those with --target, or omit it")
    return pool


def _known(name):
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}",
                           hint="omit the backend to pick the best installed one")
    return BACKENDS[name]


def _describe(targets):
    return ", ".join(f"{t['name']} ({t['format']})" for t in targets) or "no targets"


def _extra(spec):
    return {"tflite-runtime": "tflite"}.get(spec.name, spec.name)


def _suggest(targets):
    formats = {t["format"] for t in targets}
    fits = [s for s in ordered() if formats & set(s.formats)]
    if not fits:
        return "this runtime has no backend for these formats; upgrade edgepack-runtime"
    return "install one of: " + ", ".join(f"pip install {s.pip}" for s in fits)
