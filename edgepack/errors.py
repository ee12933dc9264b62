"""Host-side errors, extending the runtime's hierarchy (see ``edgepack_runtime.errors``).

    EdgepackError
    ├── ModelError            not ONNX, fails the checker, missing external data   exit 3
    ├── DynamicShapeError     dynamic dimensions left unfixed                      exit 3
    ├── UnsupportedOpsError   ops a target cannot express (all listed at once)     exit 4
    ├── ConversionError       a converter failed on a supported op                 exit 4
    ├── ParityError           converted model does not match the reference         exit 5
    └── DeliveryError         a bundle could not be delivered (--via ssh://, dir:) exit 10
"""
from __future__ import annotations

from edgepack_runtime.errors import BackendError, BundleError, EdgepackError, InputError

__all__ = [
    "BackendError", "BundleError", "ConversionError", "DeliveryError", "DynamicShapeError", "EdgepackError",
    "InputError", "ModelError", "ParityError", "UnsupportedOpsError",
]


class ModelError(EdgepackError):
    exit_code = 3


class DynamicShapeError(ModelError):
    def __init__(self, dims: list[tuple[str, int, str]]):
        """``dims``: (input or tensor name, axis, symbolic name or '?') for every dynamic dimension."""
        self.dims = dims
        listed = ", ".join(f"{name}[{axis}]={sym}" for name, axis, sym in dims)
        names = sorted({n for n, _, _ in dims})
        example = " ".join(f"--input-shape {n}=..." for n in names)
        super().__init__(
            f"model has {len(dims)} dynamic dimension(s): {listed}",
            hint=f"fix them with {example}",
        )


class UnsupportedOpsError(EdgepackError):
    exit_code = 4

    def __init__(self, target: str, problems: list[dict]):
        """``problems``: dicts with op_type, node, opset, reason (one per offending node)."""
        self.target = target
        self.problems = problems
        parts = [f"{p['op_type']} (node '{p['node']}', opset {p['opset']}): {p['reason']}" for p in problems]
        super().__init__(
            f"{len(problems)} node(s) cannot be converted for target '{target}': " + "; ".join(parts),
            hint="see `edgepack ops --target " + target + "`; pick another target or rewrite these nodes",
        )


class ConversionError(EdgepackError):
    exit_code = 4


class ParityError(EdgepackError):
    exit_code = 5


class DeliveryError(EdgepackError):
    """A bundle could not be delivered to a device or installed there (``edgepack.fleet.via``): bad URL,
    unreachable host, authentication, missing remote command, no space, or the device refused the bundle.
    ``status`` holds the device's OTA status when it reported one, ``remote_error`` its error text."""

    exit_code = 10

    def __init__(self, message: str, *, hint: str | None = None, status: dict | None = None,
                 remote_error: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status
        self.remote_error = remote_error
