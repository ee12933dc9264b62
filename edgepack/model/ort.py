"""Run an in-memory ONNX model with onnxruntime (also past protobuf's 2 GB limit)."""
from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import ModelProto

from edgepack.errors import ModelError
from edgepack.model.read import fits_protobuf


def run_model(model: ModelProto, feeds: dict[str, np.ndarray], outputs: list[str] | None = None,
              *, optimize: bool = False) -> list[np.ndarray]:
    """Run ``model`` on CPU with onnxruntime and return the requested outputs (default: all)."""
    with _session(model, optimize=optimize, threads=1) as session:
        return session.run(outputs, feeds)


def reference_outputs(model: ModelProto, samples: list[dict]) -> list[dict[str, np.ndarray]]:
    """The fp32 reference every target is verified against: onnxruntime on CPU, one session for all
    ``samples``, one dict of output name -> array per sample. ModelError when onnxruntime cannot run it.

    A quantized model (QDQ, QOperator) runs as ONNX defines it: QOperator ops expanded to DequantizeLinear ->
    float op -> QuantizeLinear, and no graph optimization, so onnxruntime's fused int8 kernels do not stand
    in for it. Those differ by CPU: without VNNI (x86 with AVX2 only) their u8s8 products saturate 16-bit
    sums, and a small quantize_static CNN gave 0.59 there for an output its definition (and an AVX-512 VNNI
    CPU) puts at 1.03. A reference that changes with the build machine would pass a build on one host and
    fail it on another."""
    names = [o.name for o in model.graph.output]
    from edgepack.model.qdq import is_quantized
    quantized = is_quantized(model)
    if quantized:
        from edgepack.model.qoperator import expand_qoperators
        expanded = ModelProto()
        expanded.CopyFrom(model)
        expand_qoperators(expanded)
        model = expanded
    try:
        with _session(model, optimize=not quantized, threads=None) as session:
            return [dict(zip(names, session.run(names, s))) for s in samples]
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"onnxruntime cannot run the model to produce the fp32 reference: {first}",
                         hint="every target is verified against onnxruntime; make the model run there first")


@contextmanager
def _session(model: ModelProto, *, optimize: bool, threads: int | None):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")   # no busy-waiting between ops
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if fits_protobuf(model):
        yield ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return
    with tempfile.TemporaryDirectory(prefix="edgepack-ort-") as tmp:
        path = Path(tmp) / "model.onnx"
        copy = ModelProto()
        copy.CopyFrom(model)
        onnx.save_model(copy, str(path), save_as_external_data=True, location="weights.bin")
        del copy
        yield ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
