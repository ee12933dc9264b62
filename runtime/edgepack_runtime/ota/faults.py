"""FAULT INJECTION (tests only): ``EDGEPACK_OTA_CRASH_AT`` makes the process SIGKILL itself at one point.

``EDGEPACK_OTA_CRASH_AT=health_check`` kills the process right after the state ``health_check`` was
persisted (before its action runs); ``health_check+`` kills it right after the action ran, before the next
state is persisted. This is the one place the variable is read; unset (as on every real device) it costs
one dictionary lookup per state change. The tests use it to kill an install at every state of the table.
"""
from __future__ import annotations

import os
import signal

ENV = "EDGEPACK_OTA_CRASH_AT"


def crash_point(state: str, after_action: bool = False) -> None:
    """SIGKILL this process if ``EDGEPACK_OTA_CRASH_AT`` names this point (see the module docstring)."""
    want = os.environ.get(ENV)
    if want and want == state + ("+" if after_action else ""):
        os.kill(os.getpid(), signal.SIGKILL)
