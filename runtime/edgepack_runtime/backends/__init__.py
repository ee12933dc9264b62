"""Backend registry and selection.

A backend is data (``BackendSpec``): its name, the target formats it runs, the top-level module whose
presence says it is installed (found with ``importlib.util.find_spec``, so probing never imports it), the
pip requirement to suggest, and a loader imported only when the backend is used. ``PREFERENCE`` orders
backends from most to least specialised; names in it that are not registered are skipped.
A backend may be limited to some platforms (``platforms``: ``sys.platform`` values; ``elsewhere`` says what
to do on the others) and may be ``explicit``: run only when asked for by name, never chosen
automatically (``coreml-reference``, the slow numpy executor for Core ML programs); ``simulated_on`` makes it
explicit only on those machines, where it merely emulates its hardware (``qnn`` on x86-64: the HTP simulator).
A loader that needs more than the model bytes (``qnn``: the target entry names a context binary beside the
model) declares ``wants_bundle`` and also receives ``entry=`` and ``bundle=``; its session may say what it
chose (``detail``, ``reason``), and ``planner`` ("module:function" of (entry, bundle)) predicts that without
loading, for ``edgepack-device info``.
"""
from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
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
    explicit: bool = False
    platforms: tuple[str, ...] = ()
    elsewhere: str = ""
    wants_bundle: bool = False
    planner: str = ""
    detail: str = ""            # how it runs, as reported by Runtime.backend_detail (default: the name)
    simulated_on: tuple[str, ...] = ()   # platform.machine() values where it only emulates its hardware: explicit there

    def automatic(self) -> bool:
        """Whether selection may pick this backend without being asked for it by name."""
        return not self.explicit and platform.machine().lower() not in self.simulated_on

    def runs_here(self) -> bool:
        """Whether this platform is one the backend runs on."""
        return not self.platforms or sys.platform in self.platforms

    def available(self) -> bool:
        """Whether the backend runs here and its package is installed (cheap: does not import it)."""
        if not self.runs_here():
            return False
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def load(self, model: bytes, *, num_threads: int | None = None, entry: dict | None = None, bundle=None):
        """Import the backend and build a Session running ``model`` (``entry``/``bundle``: for ``wants_bundle``)."""
        extra = {"entry": entry, "bundle": bundle} if self.wants_bundle else {}
        return self._call(self.loader, model, num_threads=num_threads, **extra)

    def plan(self, entry: dict, bundle) -> tuple[str, str | None]:
        """(detail, reason) this backend expects to report for ``entry``, without loading anything."""
        if not self.planner:
            return self.detail or self.name, None
        return self._call(self.planner, entry, bundle)

    def _call(self, ref: str, *args, **kwargs):
        module, func = ref.split(":")
        try:
            return getattr(importlib.import_module(module, __package__), func)(*args, **kwargs)
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
# onnxruntime also runs a Qualcomm target's portable QDQ model, on CPU, where onnxruntime-qnn is missing
register(BackendSpec("onnxruntime", ("onnx", "qnn"), "onnxruntime", "onnxruntime", ".ort:load_onnxruntime",
                     detail="onnxruntime-cpu"))
# onnxruntime-qnn's x86-64 wheel holds the HTP *simulator* (seconds per inference of a detector): there the
# backend runs only when asked for (build verification does), and bundles run on LiteRT/onnxruntime CPU
register(BackendSpec("qnn", ("qnn",), "onnxruntime_qnn", "onnxruntime-qnn", ".qnn:load_qnn", wants_bundle=True,
                     planner=".qnn:plan", simulated_on=("x86_64", "amd64", "i686", "x86")))
COREML_ELSEWHERE = ("Core ML runs on macOS; use backend='coreml-reference' (a numpy reference executor, slow) "
                    "to run it here")
register(BackendSpec("coreml", ("mlpackage",), "coremltools", "coremltools", ".coreml:load_coreml",
                     platforms=("darwin",), elsewhere=COREML_ELSEWHERE))
register(BackendSpec("coreml-reference", ("mlpackage",), "coremltools", "coremltools",
                     ".coreml_ref:load_coreml_reference", explicit=True))


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
        if not spec.runs_here():
            raise BackendError(f"backend {backend} runs on {'/'.join(spec.platforms)} only, not {sys.platform}",
                               hint=spec.elsewhere or "pick another backend")
        if not spec.available():
            raise BackendError(f"backend {backend} is not installed",
                               hint=f"pip install {spec.pip} (or edgepack-runtime[{_extra(spec)}])")
        pairs = [(spec, t) for t in pool if t["format"] in spec.formats]
        if not pairs:
            raise BackendError(f"backend {backend} runs {'/'.join(spec.formats)} targets but the bundle "
                               f"has {_describe(pool)}", hint=_suggest(pool))
        return pairs
    pairs = [(spec, t) for spec in ordered() if spec.available() and spec.automatic()
             for t in pool if t["format"] in spec.formats]
    if not pairs:
        formats = {t["format"] for t in pool}
        notes = [s.elsewhere for s in ordered() if s.elsewhere and not s.runs_here() and formats & set(s.formats)]
        if notes:
            raise BackendError(f"no backend on this {sys.platform} system runs this bundle's targets "
                               f"({_describe(pool)}): {notes[0]}",
                               hint="edgepack-device takes --backend coreml-reference")
        raise BackendError(f"no installed backend runs this bundle's targets ({_describe(pool)}); "
                           f"installed: {', '.join(s.name for s in ordered() if s.available()) or 'none'}",
                           hint=_suggest(pool))
    return pairs


def passed_over(spec: BackendSpec, fmt: str, forced: bool) -> str | None:
    """Why a backend preferred over ``spec`` for format ``fmt`` does not run it (None: ``spec`` is the best)."""
    ranked = ordered()
    better = [s for s in ranked[:ranked.index(spec)] if fmt in s.formats and not s.explicit and s.runs_here()]
    if not better:
        return None
    if forced:
        return f"backend {spec.name} was asked for (preferred for {fmt}: {', '.join(s.name for s in better)})"
    notes = [f"{s.name} is not installed (pip install {s.pip})" if not s.available() else
             f"{s.name} only emulates its hardware on this {platform.machine()} machine (ask for it: backend "
             f"'{s.name}')" for s in better if not (s.available() and s.automatic())]
    return "; ".join(notes) or None


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
    return {"tflite-runtime": "tflite", "coreml-reference": "coreml"}.get(spec.name, spec.name)


def _suggest(targets):
    formats = {t["format"] for t in targets}
    fits = [s for s in ordered() if formats & set(s.formats) and s.runs_here()]
    if not fits:
        return "this runtime has no backend for these formats; upgrade edgepack-runtime"
    return "install one of: " + ", ".join(f"pip install {s.pip}" for s in fits)
