"""Host-side helpers around ``edgepack_runtime.backends.qnn_ep``: sessions on the HTP (the simulator on
x86-64 Linux: ``libQnnHtp.so`` of onnxruntime-qnn) and the QNN EP's own log, read for the placement report.
"""
from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np
import onnx
from edgepack_runtime.backends import qnn_ep

from ...errors import BackendError


def available() -> bool:
    """Whether onnxruntime-qnn is installed (cheap: nothing is imported)."""
    return qnn_ep.installed()


def unavailable_reason() -> str | None:
    """Why HTP sessions cannot be made here (None when they can)."""
    if available():
        return None
    return f"onnxruntime-qnn is not installed (pip install {qnn_ep.PIP}, or edgepack[qualcomm])"


def session(model: onnx.ModelProto | bytes, *, provider_options: dict | None = None, config: dict | None = None,
            num_threads: int | None = None, log_level: int | None = None):
    """An onnxruntime session of ``model`` on the QNN HTP backend (nodes QNN refuses run on CPU)."""
    import onnxruntime as ort
    options = qnn_ep.session_options(provider_options, config=config, num_threads=num_threads)
    if log_level is not None:
        options.log_severity_level = log_level
    data = model if isinstance(model, bytes) else model.SerializeToString()
    try:
        return ort.InferenceSession(data, options)
    except Exception as exc:   # onnxruntime raises its own Fail/EPFail types
        raise BackendError(f"the QNN HTP backend could not load the model: {exc}",
                           hint="see the node named in the QNN error above; keep it in float or report it") from exc


def run(model: onnx.ModelProto | bytes, feeds: list[dict], *, allow_cpu: bool = False,
        provider_options: dict | None = None) -> list[list[np.ndarray]]:
    """The outputs (in graph order) of ``model`` for each input dict of ``feeds``, on HTP.

    Without onnxruntime-qnn this raises BackendError, unless ``allow_cpu`` (then onnxruntime's CPU
    provider runs the QDQ model: the same quantization grid, not HTP's kernels)."""
    if available():
        sess = session(model, provider_options=provider_options)
    elif allow_cpu:
        import onnxruntime as ort
        data = model if isinstance(model, bytes) else model.SerializeToString()
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    else:
        raise BackendError(unavailable_reason(), hint="or pass allow_cpu=True to run on onnxruntime's CPU")
    return [sess.run(None, feed) for feed in feeds]


@contextlib.contextmanager
def captured_stderr():
    """Capture what native code writes to file descriptor 2 (the QNN EP logs there); yields a list that
    holds the text once the block ends."""
    import sys
    text: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))
