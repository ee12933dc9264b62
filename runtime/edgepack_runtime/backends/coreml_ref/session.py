"""The ``coreml-reference`` runtime backend: a bundle's zipped .mlpackage run by the numpy executor."""
from __future__ import annotations

import numpy as np

from ...errors import BackendError
from .program import Program, load


def load_coreml_reference(model: bytes, *, num_threads: int | None = None) -> "CoreMLRefSession":
    """``model``: the bytes of ``model.mlpackage.zip`` (an uncompressed zip of the package folder).
    ``num_threads`` is ignored (numpy decides)."""
    return CoreMLRefSession(load(model))


class CoreMLRefSession:
    """``run(arrays in the model description's input order) -> arrays in its output order``."""

    name = "coreml-reference"

    def __init__(self, program: Program):
        self.program = program

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        names = self.program.input_names
        if len(arrays) != len(names):
            raise BackendError(f"model takes {len(names)} inputs, got {len(arrays)}",
                               hint="the bundle's io table does not match its model; rebuild it")
        out = self.program.run(dict(zip(names, arrays)))
        return [out[n] for n in self.program.output_names]

    def close(self) -> None:
        self.program = None
