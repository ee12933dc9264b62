"""onnxruntime's QNN execution provider (Qualcomm HTP), reached through the ``onnxruntime-qnn`` plugin package.

``onnxruntime-qnn`` 2.x is a plugin EP: it installs beside ``onnxruntime`` a package ``onnxruntime_qnn`` holding
``libonnxruntime_providers_qnn.so`` and the QNN SDK libraries (on Linux x86-64, ``libQnnHtp.so`` is the HTP
simulator). The library is registered once per process; sessions then ask for the QNN device explicitly.
The host (build, verification, context-binary compilation) and the device backend share this module.
"""
from __future__ import annotations

import importlib.util
import threading

from ..errors import BackendError

EP_NAME = "QNNExecutionProvider"
PIP = "onnxruntime-qnn"
_lock = threading.Lock()
_registered = False


def installed() -> bool:
    """Whether onnxruntime-qnn is installed (cheap: does not import it)."""
    try:
        return importlib.util.find_spec("onnxruntime_qnn") is not None
    except (ImportError, ValueError):
        return False


def versions() -> dict:
    """``{"onnxruntime_qnn": "2.7.0", "qnn_sdk": "2.51.0", "onnxruntime": "1.32.0"}``; BackendError if absent."""
    qnn = _import()
    import onnxruntime as ort
    info = qnn.build_and_package_info
    return {"onnxruntime_qnn": info.__version__, "qnn_sdk": getattr(info, "qnn_version", "unknown"),
            "onnxruntime": ort.__version__}


def devices() -> list:
    """The QNN EP devices onnxruntime sees, registering the plugin library on first use."""
    global _registered
    qnn = _import()
    import onnxruntime as ort
    with _lock:
        if not _registered:
            ort.set_default_logger_severity(3)   # registration and session creation warn on stderr otherwise
            try:
                ort.register_execution_provider_library(EP_NAME, qnn.get_library_path())
            except Exception as exc:
                raise BackendError(f"onnxruntime could not register the QNN execution provider: {exc}",
                                   hint=f"reinstall matching onnxruntime and {PIP} versions") from None
            _registered = True
    found = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
    if not found:
        raise BackendError("the QNN execution provider is registered but offers no device",
                           hint=f"reinstall {PIP}")
    return found


def session_options(provider_options: dict | None = None, *, cpu_fallback: bool = True,
                    num_threads: int | None = None, config: dict | None = None):
    """SessionOptions running on the QNN HTP backend (``backend_type=htp`` unless given).

    ``cpu_fallback=False`` makes any node QNN cannot take a load error instead of a CPU node.
    ``config`` adds session config entries (e.g. ``ep.context_enable``).
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if num_threads:
        options.intra_op_num_threads = num_threads
    if not cpu_fallback:
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, str(value))
    provider = {"backend_type": "htp", **{k: str(v) for k, v in (provider_options or {}).items()}}
    options.add_provider_for_devices(devices(), provider)
    return options


def _import():
    try:
        import onnxruntime_qnn
    except ImportError:
        raise BackendError(f"{PIP} is not installed", hint=f"pip install {PIP} (or edgepack-runtime[qnn])") from None
    return onnxruntime_qnn
