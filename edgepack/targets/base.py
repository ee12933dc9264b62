"""The target interface: what every folder under ``edgepack/targets/`` declares and provides.

A target is one object (an instance of a ``Target`` subclass) named in the table in
``edgepack/targets/__init__.py``. ``build``, ``ops``, ``targets``, ``debug-quant`` and the device profiles
read targets only through it:

    name, format, summary      "cpu", "tflite": the target's name in --target and in the bundle
    precisions, default        which rows of ``edgepack_runtime.precisions.PRECISIONS`` it offers
    backend                    the runtime backend that verifies it (None: the best installed one)
    requires                   optional packages it needs, with what to install
    registry() / preflight()   its op registry (``edgepack ops``) and the check naming every unsupported node
    convert(model, job)        the files for the bundle, their I/O description and conversion facts
    quantize_debug(...)        the per-layer table of ``edgepack debug-quant`` (quantizing targets only)
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Callable

import onnx
from edgepack_runtime.precisions import Gate

from ..errors import EdgepackError


@dataclass
class QuantOptions:
    """Quantization knobs from the command line; a target reads the ones that apply to it."""

    method: str = "auto"                # auto (best of minmax/percentile) | minmax | percentile | mse | entropy
    io: str = "float"                   # float | int8 | uint8 model I/O
    mixed_precision: bool = True        # keep sensitive layers in higher precision when the gate fails
    max_float_fraction: float = 0.25    # budget: at most this share of quantizable layers kept
    keep_float: tuple[str, ...] = ()    # tensors (or ONNX node names) the user wants kept
    policy: str = "cpu"                 # which ops a target keeps float by rule (see the target's docs)
    transforms: dict = field(default_factory=dict)   # edgepack.transforms name -> auto|on|off (absent: auto)
    rungs: str = "auto"                 # cpu mixed precision: auto | int16,float | float (see tflite/quant/ladder.py)


@dataclass
class Job:
    """Everything the build gives a target's ``convert`` besides the model."""

    precision: str
    calibration: object                 # edgepack.calibration.CalibrationSet (.calib, .holdout, .all)
    reference: list[dict]               # fp32 onnxruntime outputs of calibration.holdout
    gate: Gate                          # the accuracy gate this target's model must pass
    quant: QuantOptions = field(default_factory=QuantOptions)
    profiles: tuple[dict, ...] = ()     # device profiles that asked for this target
    num_threads: int | None = None
    progress: Callable[[str], None] = lambda step: None
    model_name: str = ""                # the bundle's model name and version (for a target's own metadata)
    model_version: str = "1"
    require_npu: bool = False           # --require-npu: a target with an NPU fails on any node left to its CPU
    model_ranges: dict = field(default_factory=dict)    # a quantized model in: tensor -> (lo, hi) its own
                                                        # activation scales cover (set by the target)


@dataclass
class Converted:
    """A target's output: ``files`` (bundle path -> bytes) holds ``file``, the model the runtime loads."""

    files: dict[str, bytes]
    file: str
    io: dict                            # {"inputs": [{"name", "perm"}], "outputs": [...]}
    info: dict                          # conversion facts: ops, transpose count, sizes...
    extra: dict = field(default_factory=dict)   # further manifest keys: quantization, latency_ms...
    warnings: list[str] = field(default_factory=list)   # for the build's warnings (e.g. a part not made, why)


@dataclass(frozen=True)
class Requirement:
    module: str                         # import name whose presence says it is installed
    pip: str                            # what to install
    why: str                            # what the target needs it for


class Target:
    """Base class of a target; subclasses set the class attributes and implement ``convert``."""

    name: str = ""
    format: str = ""
    summary: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    default_precision: str = "fp32"
    backend: str | None = None
    requires: tuple[Requirement, ...] = ()
    aliases: tuple[str, ...] = ()
    portable: bool = False              # runs on every device profile (a plain CPU is enough)
    debug_precision: str | None = None  # the precision ``edgepack debug-quant`` examines (None: no debugger)
    debug_precisions: tuple[str, ...] = ()   # all it can examine (``--precision``); empty: just debug_precision

    def path(self, filename: str) -> str:
        """Where a file of this target lives inside the bundle."""
        return f"models/{self.name}/{filename}"

    def registry(self):
        """The op registry behind ``edgepack ops --target NAME`` (None: the target converts any op)."""
        return None

    def preflight(self, model: onnx.ModelProto) -> None:
        """Raise UnsupportedOpsError naming every node this target cannot convert."""

    def convert(self, model: onnx.ModelProto, job: Job) -> Converted:
        raise NotImplementedError

    def quantize_debug(self, model: onnx.ModelProto, job: Job):
        """Quantize at ``debug_precision`` without mixed precision; the result has ``figures`` (the gate's),
        ``method``, ``layers`` (graph order) and ``ranked`` (``edgepack.verify.layers.rank``)."""
        raise NotImplementedError

    def quant_choices(self) -> dict[str, tuple[str, ...]]:
        """Accepted values of the ``QuantOptions`` fields this target reads (checked before any work)."""
        return {}

    def missing(self) -> list[Requirement]:
        """Requirements not installed on this host (cheap: nothing is imported)."""
        out = []
        for req in self.requires:
            try:
                found = importlib.util.find_spec(req.module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                out.append(req)
        return out

    def unavailable_reason(self) -> str | None:
        """Why this target cannot be built here, with what to install; None when it can."""
        gone = self.missing()
        if not gone:
            return None
        return "; ".join(f"needs {r.module} ({r.why}): pip install {r.pip}" for r in gone)

    def check_quant(self, quant: QuantOptions) -> None:
        """EdgepackError when a ``QuantOptions`` field this target reads holds a value it does not accept."""
        for name, allowed in self.quant_choices().items():
            value = getattr(quant, name)
            if value not in allowed:
                flag = {"policy": "--int8-policy"}.get(name, f"--{name}")
                raise EdgepackError(f"{flag} '{value}' is not one of {', '.join(allowed)}")

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise EdgepackError(f"target '{self.name}' has no precision '{precision}'",
                                hint=f"its precisions: {', '.join(self.precisions)}")
