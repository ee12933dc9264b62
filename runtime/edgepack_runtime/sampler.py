"""Optional raw-data sampling for later labeling: rate-limited and size-capped, off by default.

Each kept call becomes one ``.npz`` (inputs as ``in/<i>``, outputs as ``out/<i>`` in manifest order, plus
the wall-clock time) in ``folder``. A token bucket limits the rate; a byte cap on the folder stops writing
(counted as ``skipped_full``) instead of filling the device's disk.
"""
from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import numpy as np


class RawSampler:
    def __init__(self, folder: str | Path, *, per_minute: float = 6.0, max_bytes: int = 100 * 2 ** 20,
                 clock=time.monotonic):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rate, self.max_bytes, self._clock = per_minute / 60.0, max_bytes, clock
        self._tokens, self._last = 1.0, clock()
        self._lock = threading.Lock()
        self.used = sum(p.stat().st_size for p in self.folder.glob("*.npz"))
        self.kept = self.skipped_rate = self.skipped_full = 0

    def offer(self, inputs: dict, outputs: dict) -> bool:
        """Keep this call's data if the rate and the size cap allow; return whether it was kept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(1.0, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1.0:
                self.skipped_rate += 1
                return False
            buf = io.BytesIO()
            arrays = {f"in_{i}": np.asarray(v) for i, v in enumerate(inputs.values())}
            arrays.update({f"out_{i}": np.asarray(v) for i, v in enumerate(outputs.values())})
            np.savez_compressed(buf, time=np.float64(time.time()), **arrays)
            data = buf.getvalue()
            if self.used + len(data) > self.max_bytes:
                self.skipped_full += 1
                return False
            self._tokens -= 1.0
            path = self.folder / f"sample_{time.time_ns()}.npz"
            path.write_bytes(data)
            self.used += len(data)
            self.kept += 1
            return True

    def stats(self) -> dict:
        return {"kept": self.kept, "skipped_rate": self.skipped_rate, "skipped_full": self.skipped_full,
                "bytes": self.used}
