"""Build small ML Programs with coremltools' MIL builder, save them as .mlpackage, load them in the executor."""
from __future__ import annotations

import io
import itertools
import zipfile
from pathlib import Path

import numpy as np

_count = itertools.count()


def ct():
    import coremltools
    return coremltools


def build(tmp: Path, fn, specs: dict, *, precision: str = "fp32", target: str = "iOS16",
          passes: bool = True) -> Path:
    """Save ``fn`` (MIL builder calls on its inputs; returns one var or a tuple) as an .mlpackage.

    ``specs``: input name -> shape (float32) or (shape, numpy dtype), in ``fn``'s argument order.
    ``passes=False`` skips coremltools' optimisation passes (the ops stay exactly as written)."""
    c = ct()
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types
    tensor_specs = []
    for name, spec in specs.items():
        shape, dtype = (spec, np.float32) if not isinstance(spec, tuple) or isinstance(spec[0], int) else spec
        tensor_specs.append(mb.TensorSpec(shape=tuple(shape), dtype=types.numpy_type_to_builtin_type(dtype)))
    prog = mb.program(input_specs=tensor_specs, opset_version=getattr(c.target, target))(fn)
    kwargs = {} if passes else {"pass_pipeline": c.PassPipeline.EMPTY}
    model = c.convert(prog, convert_to="mlprogram", minimum_deployment_target=getattr(c.target, target),
                      compute_precision=c.precision.FLOAT16 if precision == "fp16" else c.precision.FLOAT32,
                      **kwargs)
    path = tmp / f"m{next(_count)}.mlpackage"
    model.save(str(path))
    return path


def load(path):
    from edgepack_runtime.backends.coreml_ref import load as _load
    return _load(path)


def zip_package(path: Path, *, top: str | None = "model.mlpackage") -> bytes:
    """An uncompressed zip of the package folder (as bundles store it); ``top=None`` zips its content."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(p for p in Path(path).rglob("*") if p.is_file()):
            rel = f.relative_to(path).as_posix()
            zf.write(f, f"{top}/{rel}" if top else rel)
    return buf.getvalue()


def rng(seed=0):
    return np.random.default_rng(seed)
