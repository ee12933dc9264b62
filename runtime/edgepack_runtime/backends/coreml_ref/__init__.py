"""A reference executor for Core ML ML Programs, in numpy (runs where Core ML does not: Linux, CI).

    from edgepack_runtime.backends.coreml_ref import load
    prog = load("model.mlpackage")            # folder, zip of one (path or bytes)
    outputs = prog.run({"x": x})              # {output name: array}, declared dtypes
    trace = prog.run({"x": x}, keep_all=True) # every named intermediate value

Parses the ``Model`` protobuf with coremltools' generated classes (``coremltools.proto``; nothing of
Core ML itself is needed), reads weight blobs itself (``blob.py``), and runs the main function's ops one
by one through ``registry.OPS`` (one module per op family under ``ops/``). Numerics: see ``program.py``.
An op missing from the table fails at load, with every missing op type listed in one BackendError.
As a runtime backend it is ``coreml-reference`` (never chosen automatically: it is slow).
"""
from __future__ import annotations

from .program import Program, load, preflight
from .registry import OPS, op, supported_ops
from .session import CoreMLRefSession, load_coreml_reference

__all__ = ["Program", "load", "preflight", "OPS", "op", "supported_ops", "CoreMLRefSession",
           "load_coreml_reference"]
