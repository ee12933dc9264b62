"""OTA errors: ``OtaError`` (from ``edgepack_runtime.errors``, exit code 11) and ``StateError`` for ``ota.json``."""
from __future__ import annotations

from ..errors import OtaError

__all__ = ["NewerStateError", "OtaError", "StateError"]


class StateError(OtaError):
    """``ota.json`` is corrupt or written by a newer runtime; the device keeps serving ``slots/active``."""


class NewerStateError(StateError):
    """``ota.json`` has a format this runtime does not know: it is left untouched, never overwritten."""
