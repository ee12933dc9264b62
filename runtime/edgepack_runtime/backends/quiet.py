"""Keep native libraries' informational chatter off stderr without losing their real messages.

LiteRT's C++ core prints ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight to file
descriptor 2 the first time a delegate is made in a process: device CLIs with ``--json`` and agents whose
stderr goes to a journal should not carry it. ``native_stderr_filtered(patterns)`` points fd 2 at a temporary
file for the duration of the block and afterwards writes back every line that matches none of the patterns,
so warnings and errors still appear (a little later). Python-level ``sys.stderr`` writes in the block are
captured the same way, since they end on fd 2 too.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

_lock = threading.Lock()
XNNPACK_INFO = re.compile(r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\s*$")


@contextlib.contextmanager
def native_stderr_filtered(*patterns: re.Pattern):
    """Run the block with fd 2 captured; re-emit the captured lines that match none of ``patterns``."""
    try:
        saved = os.dup(2)
    except OSError:          # no fd 2 (a daemon with closed stdio): nothing to filter
        yield
        return
    with _lock, tempfile.TemporaryFile() as sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not any(p.match(line) for p in patterns)]
            if kept:
                os.write(2, "".join(kept).encode())
