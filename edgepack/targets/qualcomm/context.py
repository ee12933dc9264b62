"""QNN context binaries: the QDQ model compiled for one HTP architecture and SoC by onnxruntime-qnn on the host.

Creating a QNN session with ``ep.context_enable=1`` writes an *EP-context model*: the HTP partitions become
``EPContext`` nodes holding the compiled QNN context (embedded, ``ep.context_embed_mode=1``: one file in the
bundle); nodes QNN did not take stay as ordinary ONNX nodes (CPU), among them the QuantizeLinear of each
graph input and the DequantizeLinear of each graph output (QNN does not take those by design). A context
binary is tied to the QNN SDK and the HTP architecture: the manifest records both (``info``) so the device
runtime can fall back to the QDQ model when they do not match.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import onnx
from edgepack_runtime.backends import qnn_ep
from onnx import helper

from ...errors import BackendError
from . import htp
from .placement import compose_errors

DEFAULT_HTP_ARCH = "75"       # Snapdragon 8 Gen 3 (Hexagon v75) when no device profile names one
DEFAULT_SOC_MODEL = "57"      # QNN's SoC id of SM8650 (Snapdragon 8 Gen 3)
VERBOSE = 0                   # onnxruntime log level at which the QNN EP says why it refuses a node


@dataclass
class Compiled:
    """An EP-context model; ``data`` and ``model`` are None when QNN took no node (nothing to compile)."""

    data: bytes | None        # the EP-context model (.onnx with the context binary embedded)
    model: onnx.ModelProto | None   # the same, parsed
    info: dict                # the manifest's qnn.context (file added by the target)
    log: str                  # the QNN EP's verbose log of the compilation (node validation, reasons)


def compile_context(qdq: bytes, *, htp_arch: str = DEFAULT_HTP_ARCH,
                    soc_model: str = DEFAULT_SOC_MODEL) -> Compiled:
    """Compile ``qdq`` (QDQ model bytes) into an EP-context model for ``htp_arch`` / ``soc_model``.

    BackendError when onnxruntime-qnn is missing or QNN cannot build the graph (naming the node it names)."""
    provider = {"htp_arch": str(htp_arch), "soc_model": str(soc_model)}
    with tempfile.TemporaryDirectory(prefix="edgepack-qnn-ctx-") as tmp:
        path = Path(tmp) / "model.ctx.onnx"
        config = {"ep.context_enable": "1", "ep.context_file_path": str(path), "ep.context_embed_mode": "1"}
        t0 = time.perf_counter()
        try:
            with htp.captured_stderr() as log:
                htp.session(qdq, provider_options=provider, config=config, log_level=VERBOSE)
        except BackendError as exc:
            named = "; ".join(compose_errors("".join(log)))
            raise BackendError(f"QNN could not compile the model for HTP v{htp_arch}"
                               f"{f' ({named})' if named else ''}: {exc.message}",
                               hint="keep the named node in float (--keep-float NODE), or report the model") from exc
        seconds = time.perf_counter() - t0
        data = path.read_bytes() if path.exists() else None     # not written when QNN took no node
    model = onnx.load_model_from_string(data) if data else None
    info = {"htp_arch": str(htp_arch), "soc_model": str(soc_model),
            "sdk_version": sdk_version(model) if model else None, "ort_qnn": qnn_ep.versions()["onnxruntime_qnn"],
            "compile_seconds": round(seconds, 3), "size": len(data) if data else 0}
    return Compiled(data, model, info, "".join(log))


def sdk_version(ctx: onnx.ModelProto) -> str | None:
    """The ``ep_sdk_version`` attribute of the first EPContext node (e.g. ``v2.51.0.260929181845``)."""
    for node in ctx.graph.node:
        if node.op_type == "EPContext":
            for attr in node.attribute:
                if attr.name == "ep_sdk_version":
                    value = helper.get_attribute_value(attr)
                    return value.decode() if isinstance(value, bytes) else str(value)
    return None
