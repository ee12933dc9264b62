"""Core ML on macOS: ``coremltools.models.MLModel(...).predict`` on the bundle's zipped .mlpackage.

Untested in this repository's CI (Linux has no Core ML; ``predict`` needs macOS). Compute units: the
``compute_units`` argument, else the ``EDGEPACK_COREML_COMPUTE_UNITS`` environment variable, else ALL;
one of ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE (coremltools' ``ComputeUnit`` names).
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import BackendError

UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")


def load_coreml(model: bytes, *, num_threads: int | None = None, compute_units: str | None = None) -> "CoreMLSession":
    import coremltools as ct
    units = (compute_units or os.environ.get("EDGEPACK_COREML_COMPUTE_UNITS") or "ALL").upper()
    if units not in UNITS:
        raise BackendError(f"unknown Core ML compute units {units!r}", hint=f"use one of {', '.join(UNITS)}")
    workdir = Path(tempfile.mkdtemp(prefix="edgepack-coreml-"))
    try:
        root = _unzip(model, workdir)
        mlmodel = ct.models.MLModel(str(root), compute_units=getattr(ct.ComputeUnit, units))
    except BackendError:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    except Exception as exc:  # coremltools raises plain Exceptions when Core ML refuses a model
        shutil.rmtree(workdir, ignore_errors=True)
        raise BackendError(f"Core ML could not load the model: {exc}", hint="rebuild the bundle") from None
    return CoreMLSession(mlmodel, workdir, units)


def _unzip(model: bytes, dest: Path) -> Path:
    """Extract the zipped package (safely: no absolute paths, no ..) and return the .mlpackage folder."""
    with zipfile.ZipFile(io.BytesIO(model)) as zf:
        for name in zf.namelist():
            if name.startswith("/") or ".." in name.split("/"):
                raise BackendError(f"the Core ML package zip holds an unsafe member {name!r}",
                                   hint="rebuild the bundle")
        zf.extractall(dest)
    manifests = sorted(dest.rglob("Manifest.json"), key=lambda p: len(p.parts))
    if not manifests:
        raise BackendError("the Core ML package zip has no Manifest.json", hint="rebuild the bundle")
    return manifests[0].parent


class CoreMLSession:
    """``run(arrays in the model description's input order) -> arrays in its output order``."""

    name = "coreml"

    def __init__(self, mlmodel, workdir: Path, units: str):
        self._model, self._workdir, self.compute_units = mlmodel, workdir, units
        spec = mlmodel.get_spec()
        self._inputs = [i.name for i in spec.description.input]
        self._outputs = [o.name for o in spec.description.output]

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        if len(arrays) != len(self._inputs):
            raise BackendError(f"model takes {len(self._inputs)} inputs, got {len(arrays)}",
                               hint="the bundle's io table does not match its model; rebuild it")
        try:
            out = self._model.predict(dict(zip(self._inputs, arrays)))
        except Exception as exc:
            raise BackendError(f"Core ML failed to run the model: {exc}") from None
        return [np.asarray(out[name]) for name in self._outputs]

    def close(self) -> None:
        self._model = None
        shutil.rmtree(self._workdir, ignore_errors=True)
