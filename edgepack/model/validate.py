"""Step 2 of loading: the ONNX checker, the opset floor, local functions and non-standard domains."""
from __future__ import annotations

import logging
from pathlib import Path

import onnx
import onnx.inliner
from onnx import ModelProto

from edgepack.errors import ModelError
from edgepack.model.graphutil import STANDARD_DOMAINS, main_opset, subgraphs
from edgepack.model.read import fits_protobuf, one_line

log = logging.getLogger("edgepack.model")

MIN_OPSET = 7


def check_model(model: ModelProto, path: Path) -> None:
    """Run ``onnx.checker`` (by path when the model is over 2 GB) and enforce opset >= 7."""
    target: ModelProto | str = model if fits_protobuf(model) else str(path)
    try:
        onnx.checker.check_model(target)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as err:
        raise ModelError(f"{path} fails the ONNX checker: {one_line(err)}",
                         hint="re-export the model, or repair it with onnx tools") from err
    opset = main_opset(model)
    if opset < MIN_OPSET:
        raise ModelError(f"{path} uses ai.onnx opset {opset}; edgepack needs opset {MIN_OPSET} or newer",
                         hint="convert it with onnx.version_converter.convert_version(model, 13)")


def inline_functions(model: ModelProto, path: Path) -> ModelProto:
    """Expand model-local functions so every node is a plain operator."""
    if not model.functions:
        return model
    try:
        return onnx.inliner.inline_local_functions(model)
    except Exception as err:  # noqa: BLE001 - the inliner raises assorted C++ errors
        raise ModelError(f"{path}: could not inline its local functions ({one_line(err)})",
                         hint="re-export the model without local functions") from err


def nonstandard_ops(model: ModelProto) -> dict[str, list[str]]:
    """Op types per non-standard domain (left for the converter's preflight to judge)."""
    found: dict[str, set[str]] = {}

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS:
                found.setdefault(node.domain, set()).add(node.op_type)
            for sub in subgraphs(node):
                walk(sub)

    walk(model.graph)
    return {domain: sorted(ops) for domain, ops in sorted(found.items())}


def note_nonstandard(model: ModelProto, path: Path) -> None:
    ops = nonstandard_ops(model)
    if ops:
        listed = "; ".join(f"{d}: {', '.join(o)}" for d, o in ops.items())
        log.warning("%s uses non-standard domains (%s); target preflight decides on them", path, listed)
