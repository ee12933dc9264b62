"""ONNX -> MIL program -> ML Program package.

``lower`` walks the normalized ONNX graph once, calling each node's converter (``ops/``) inside a MIL
function whose inputs are the ONNX graph inputs; ``package`` hands the program to coremltools, which runs
its MIL pass pipeline (including fp16 compute precision) and serializes the ML Program; ``zip_package``
stores the ``.mlpackage`` folder as one uncompressed zip for the bundle.
"""
from __future__ import annotations

import io
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import onnx

from ...errors import ConversionError
from ..registry import convert_nodes
from .context import MIL_DTYPE, Context, narrow
from .deploy import DEPLOYMENT, ct_target


def preflight(model: onnx.ModelProto) -> None:
    """UnsupportedOpsError naming every node the Core ML target cannot convert."""
    from . import ops  # noqa: F401  (registers the converters)
    from .registry import COREML
    COREML.preflight(model.graph, Context(model).opsets, Context(model))


def lower(model: onnx.ModelProto, deployment: str = "iOS16", compute: str = "fp32"):
    """The MIL program (coremltools ``Program``) of a normalized ONNX model, for ``deployment``. ``compute``:
    the precision ``package`` will give it; at fp16, constants beyond fp16's range are clamped to +-65504
    (``program.edgepack_clamped`` names them; ``Context``)."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program
    from coremltools.converters.mil.mil import types

    from . import ops  # noqa: F401
    from .registry import COREML
    ctx = Context(model, fp16=compute == "fp16")
    entries = COREML.preflight(model.graph, ctx.opsets, ctx)
    placeholders = {}
    for v in model.graph.input:
        dtype = narrow(ctx.dtype(v.name))
        if dtype not in MIL_DTYPE:
            raise ConversionError(f"input '{v.name}' has type {dtype}, which Core ML inputs cannot take")
        shape = ctx.shape(v.name) or (1,)          # Core ML inputs have rank >= 1: a scalar comes as [1]
        placeholders[v.name] = mb.placeholder(shape=shape, dtype=types.string_to_builtin(MIL_DTYPE[dtype]))
    with Function(placeholders, opset_version=ct_target(deployment)) as fn:
        for name, var in fn.inputs.items():
            scalar = not ctx.shape(name)
            ctx.set(name, mb.reshape(x=var, shape=np.zeros(0, np.int32), name=name + "__scalar") if scalar else var)
        convert_nodes(model.graph, entries, ctx)
        fn.set_outputs([_named_output(ctx, o.name, mb) for o in model.graph.output])
    program = Program()
    program.add_function("main", fn)
    program.edgepack_clamped = list(ctx.clamped)
    return program


def source_name(name: str) -> str:
    """An op's name as the translator gave it: coremltools' fp16 pass renames op ``x`` to ``x_cast_fp16``."""
    return name[:-len("_cast_fp16")] if name.endswith("_cast_fp16") else name


def _named_output(ctx: Context, name: str, mb):
    """The graph output ``name`` as a MIL var called ``name`` (an identity when the op is named otherwise)."""
    value = ctx.x(name)
    if isinstance(value, np.ndarray) or value.name != name:
        value = mb.identity(x=value, name=name)
    return value


def package(program, *, precision: str = "fp16", deployment: str = "iOS16", metadata: dict | None = None):
    """coremltools' MLModel of ``program`` (fp16 compute precision unless ``precision`` is fp32)."""
    import coremltools as ct
    compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlmodel = ct.convert(program, convert_to="mlprogram", compute_precision=compute,
                             minimum_deployment_target=ct_target(deployment), skip_model_load=True)
    for key, value in (metadata or {}).items():
        setattr(mlmodel, key, value) if key in ("author", "version", "short_description", "license") \
            else mlmodel.user_defined_metadata.__setitem__(key, str(value))
    return mlmodel


def zip_package(mlmodel) -> bytes:
    """The saved ``.mlpackage`` folder as one uncompressed zip (members under ``model.mlpackage/``,
    folder entries included)."""
    with tempfile.TemporaryDirectory(prefix="edgepack-coreml-") as tmp:
        root = Path(tmp) / "model.mlpackage"
        mlmodel.save(str(root))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for path in [root] + sorted(root.rglob("*")):   # folders too: the manifest names empty ones
                zf.write(path, str(path.relative_to(Path(tmp))))
        return buf.getvalue()


def discard(*mlmodels) -> None:
    """Delete the temporary ``.mlpackage`` folders coremltools made for these models now: it only removes them
    at interpreter exit, which forked workers and killed processes never reach (they piled up in /tmp)."""
    for mlmodel in mlmodels:
        if getattr(mlmodel, "is_temp_package", False) and getattr(mlmodel, "package_path", None):
            shutil.rmtree(mlmodel.package_path, ignore_errors=True)


def unzip_package(data: bytes, dest: str | Path) -> Path:
    """Extract a zipped package into ``dest``; the ``.mlpackage`` folder's path."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        if any(n.startswith("/") or ".." in Path(n).parts for n in names):
            raise ConversionError("zipped package has unsafe member names")
        zf.extractall(dest)
    return Path(dest) / names[0].split("/")[0]


def load_program(data: bytes):
    """Load a zipped package back (``MLModel(path, skip_model_load=True)``) and return (spec, MIL program)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load
    with tempfile.TemporaryDirectory(prefix="edgepack-coreml-") as tmp:
        path = unzip_package(data, tmp)
        mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
        spec = mlmodel.get_spec()
        weights = str(path / "Data" / "com.apple.CoreML" / "weights")
        program = milproto_load(spec, specification_version=spec.specificationVersion, file_weights_dir=weights)
    return spec, program


def validate(data: bytes):
    """Reload the package and run coremltools' validation of the MIL program; returns (spec, program)."""
    spec, program = load_program(data)
    try:
        program.validate(check_essential_scope=True)
    except Exception as exc:
        raise ConversionError(f"the Core ML program fails coremltools' validation: {exc}") from exc
    return spec, program


__all__ = ["DEPLOYMENT", "lower", "package", "preflight", "validate", "zip_package"]
