"""``qnn`` backend: Qualcomm bundles on the Hexagon NPU (HTP) through onnxruntime's QNN execution provider.

Which model it opens (the selection rule; ``plan`` applies it without opening anything):

1. The precompiled context binary (``qnn.context`` in the target entry) when it fits this device:
   - the QNN SDK inside the installed onnxruntime-qnn has the same major.minor.patch as the SDK that compiled
     the binary (the build stamp after the patch number is ignored). A context binary is a serialized graph
     for one SDK's HTP backend; we do not bet on cross-version compatibility;
   - the HTP architecture matches. The device's architecture is ``EDGEPACK_QNN_HTP_ARCH`` when set ("75"
     or "v75"). Otherwise, on real hardware (the QNN EP offers an NPU device), onnxruntime-qnn's own
     compatibility check judges the binary; on the x86 HTP simulator (the EP offers only a CPU device) the
     simulator emulates whichever architecture the binary was compiled for, so the architecture fits;
   - the binary says the same: its compatibility string (model metadata written by onnxruntime when it
     compiled it) names the SDK and architecture the manifest claims;
   - and it loads.
2. Otherwise the portable QDQ model on the QNN EP (HTP), after logging one WARNING line on the logger
   ``edgepack_runtime.qnn`` with the reason. Nodes HTP cannot take run on onnxruntime's CPU EP.
3. If onnxruntime-qnn is missing or the QDQ model does not load on it, the runtime moves on to the
   ``onnxruntime`` backend, which runs the QDQ model on CPU.

The session reports ``detail`` ("qnn-context" | "qnn-qdq") and ``reason`` (why not the context binary).
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
from contextlib import contextmanager

from ..errors import BackendError
from . import qnn_ep
from .ort import OrtSession
from .qnn_manifest import Context, block, parse_arch, parse_sdk, read_context, sdk_text

ARCH_ENV = "EDGEPACK_QNN_HTP_ARCH"
log = logging.getLogger("edgepack_runtime.qnn")
_COMPAT = re.compile(r"^v2:\d+:(\d+\.\d+\.\d+):[^:]*:(\d+):(\d+):")   # onnxruntime-qnn 2.x's compatibility string
_quiet_lock = threading.Lock()
_banner_done = False


def load_qnn(model: bytes, *, num_threads: int | None = None, entry: dict | None = None,
             bundle=None) -> "QnnSession":
    """Open a Qualcomm target: its context binary when it fits (see the module docstring), else the QDQ model."""
    versions = qnn_ep.versions()
    npu = _has_npu(qnn_ep.devices())
    if bundle is None:
        ctx, reason = None, "the loader was given no bundle to read a context binary from"
    else:
        ctx, reason = read_context(entry or {}, bundle.manifest["files"])
    if ctx is not None:
        reason = fit(ctx, versions["qnn_sdk"], device_arch())
    if ctx is not None and reason is None:
        session, reason = _open_context(bundle.read(ctx.file), ctx, entry, npu, num_threads)
        if session is not None:
            return session
    named = (block(entry) or {}).get("context") is not None
    (log.warning if named else log.info)("qnn: not using a context binary (%s); running the QDQ model on HTP",
                                         reason)
    try:
        session = _create(model, _provider_options(ctx, npu), num_threads)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise BackendError(f"the QNN execution provider could not load the QDQ model: {_first_line(exc)}",
                           hint="run it on CPU with backend='onnxruntime', or rebuild the bundle") from None
    return QnnSession(session, "qnn-qdq", reason)


def plan(entry: dict, bundle) -> tuple[str, str | None]:
    """("qnn-context" | "qnn-qdq", reason) as ``load_qnn`` would decide before opening anything.

    "qnn-context" may still end as "qnn-qdq" if the binary then fails its own checks or does not load."""
    ctx, reason = read_context(entry, bundle.manifest["files"])
    if ctx is None:
        return "qnn-qdq", reason
    reason = fit(ctx, qnn_ep.versions()["qnn_sdk"], device_arch())
    return ("qnn-qdq", reason) if reason else ("qnn-context", None)


def fit(ctx: Context, installed_sdk: str, arch: str | None) -> str | None:
    """Why the context binary ``ctx`` does not fit this device (None: it fits, as far as the manifest says).

    ``arch``: the device's HTP architecture when known; None leaves the architecture to the binary's own
    check on real hardware (``_binary_says``) and to the simulator, which emulates any."""
    have = parse_sdk(installed_sdk)
    if have is None:
        return f"cannot read the installed QNN SDK version {installed_sdk!r}"
    if have != ctx.sdk:
        return (f"it was compiled with QNN SDK {sdk_text(ctx.sdk)} ({ctx.sdk_version}) but the installed "
                f"onnxruntime-qnn carries QNN SDK {sdk_text(have)}")
    if arch is not None and arch != ctx.htp_arch:
        return f"it was compiled for HTP v{ctx.htp_arch} but this device is HTP v{arch} ({ARCH_ENV})"
    return None


def device_arch() -> str | None:
    """The device's HTP architecture from ``EDGEPACK_QNN_HTP_ARCH`` (None when unset); BackendError if unreadable."""
    raw = os.environ.get(ARCH_ENV, "").strip()
    if not raw:
        return None
    arch = parse_arch(raw)
    if arch is None:
        raise BackendError(f"{ARCH_ENV}={raw[:40]!r} is not an HTP architecture",
                           hint="set it to digits such as 75 (v75), or unset it")
    return arch


class QnnSession(OrtSession):
    """An onnxruntime session on the QNN EP; ``detail`` says which model it runs, ``reason`` why not the context."""

    name = "qnn"

    def __init__(self, session, detail: str, reason: str | None):
        super().__init__(session)
        self.detail, self.reason = detail, reason


def _open_context(data: bytes, ctx: Context, entry: dict, npu: bool, num_threads) -> tuple[QnnSession | None, str]:
    why = _binary_says(data, ctx, npu)
    if why:
        return None, why
    try:
        session = _create(data, _provider_options(ctx, npu), num_threads)
    except Exception as exc:
        return None, f"onnxruntime could not load it: {_first_line(exc)}"
    io = entry.get("io") or {}
    counts = (len(session.get_inputs()), len(session.get_outputs()))
    if counts != (len(io.get("inputs", [])), len(io.get("outputs", []))):
        return None, f"it has {counts[0]} inputs and {counts[1]} outputs, unlike the target's io table"
    return QnnSession(session, "qnn-context", None), ""


def _binary_says(data: bytes, ctx: Context, npu: bool) -> str | None:
    """Why the binary's own compatibility string rules it out (None: fits, or the string is absent/unknown)."""
    from onnxruntime.capi import _pybind_state as C
    try:
        info = C.get_compatibility_info_from_model_bytes(data, qnn_ep.EP_NAME)
    except Exception:
        return None    # not an ONNX model, or an onnxruntime without the API: loading it decides
    match = _COMPAT.match(info) if isinstance(info, str) else None
    if match:
        sdk, arch = match.group(1), match.group(2)
        if parse_sdk(sdk) != ctx.sdk or arch != ctx.htp_arch:
            return (f"the binary says QNN SDK {sdk}, HTP v{arch} but the manifest says QNN SDK "
                    f"{sdk_text(ctx.sdk)}, HTP v{ctx.htp_arch}")
    if npu and isinstance(info, str) and device_arch() is None:
        try:
            verdict = C.get_model_compatibility_for_ep_devices(
                [d for d in qnn_ep.devices() if _is_npu(d)], info)
        except Exception:
            return None
        if verdict == C.OrtCompiledModelCompatibility.EP_UNSUPPORTED:
            return "onnxruntime-qnn says this device cannot run it (compiled for another SoC or SDK)"
    return None


def _provider_options(ctx: Context | None, npu: bool) -> dict:
    """htp_arch/soc_model for the QNN EP: the stated device arch; on the simulator, the binary's (same chip
    for both models); on real hardware without a stated arch, nothing (QNN detects it)."""
    arch = device_arch()
    if arch is not None:
        return {"htp_arch": arch}
    if ctx is not None and not npu:
        return {"htp_arch": ctx.htp_arch, **({"soc_model": ctx.soc_model} if ctx.soc_model else {})}
    return {}


def _create(model: bytes, provider_options: dict, num_threads):
    import onnxruntime as ort
    options = qnn_ep.session_options(provider_options, num_threads=num_threads)
    options.log_severity_level = 4     # a failure comes back as the exception; we log our own one line
    with _quiet_stdout():
        session = ort.InferenceSession(model, sess_options=options)
    session.disable_fallback()   # else onnxruntime's Python wrapper swaps to CPU on an EP error, printing to stdout
    return session


@contextmanager
def _quiet_stdout():
    """The HTP simulator prints a banner ("# LIBNATIVE: ...") on file descriptor 1 when the process's first QNN
    session starts: discard what is written there meanwhile, so ``edgepack-device run --json`` prints only JSON
    and nothing else clutters a device's output. Only until one session has started."""
    global _banner_done
    with _quiet_lock:
        if _banner_done:
            yield
            return
        try:
            sys.stdout.flush()
            saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
        except (OSError, ValueError, AttributeError):
            yield
            return
        try:
            os.dup2(null, 1)
            yield
            _banner_done = True
        finally:
            _flush_c_stdio()
            os.dup2(saved, 1)
            os.close(saved)
            os.close(null)


def _flush_c_stdio() -> None:
    try:
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):
        pass


def _has_npu(devices) -> bool:
    return any(_is_npu(d) for d in devices)


def _is_npu(device) -> bool:
    import onnxruntime as ort
    return device.device.type == ort.OrtHardwareDeviceType.NPU


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
