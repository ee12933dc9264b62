"""``debug-quant`` as a library call: where does a target's quantized model lose accuracy?

    report = debug_quant("model.onnx", calibration="data.npz")      # target="cpu": TFLite int8
    report.ranked[0]        # the culprit: the layer whose own quantization adds the most error

Every layer of the quantized model is compared with its float twin on the held-out samples (see
``edgepack.verify.layers`` for the row format); nothing is kept float automatically.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgepack_runtime.precisions import gate

from . import targets as table
from .build import CALIBRATED, N_SYNTHETIC, SYNTHETIC_BYTES
from .calibration import load_calibration
from .errors import EdgepackError
from .model import load_model
from .model.ort import reference_outputs
from .targets.base import Job, QuantOptions
from .verify.floor import calibration_floor, floor_figures


@dataclass
class DebugReport:
    model: str
    target: str
    precision: str
    method: str                 # calibration method used
    calibration: dict           # CalibrationSet.describe()
    warnings: list[str]
    parity: dict                # gate figures of the quantized model on the hold-out
    layers: list[dict]          # graph order
    ranked: list[dict]          # worst first
    floor: dict | None = None   # the gate on the fp32 model with inputs moved by half an int8 step

    def as_json(self) -> dict:
        return {"model": self.model, "target": self.target, "precision": self.precision, "method": self.method,
                "calibration": self.calibration, "parity": self.parity,
                "culprits": [r["tensor"] for r in self.ranked[:10]], "floor": self.floor, "layers": self.layers}


def debug_quant(model_path: str | Path, *, target: str = table.DEFAULT, precision: str | None = None,
                calibration=None, preprocess=None, holdout: float = 0.2, input_shapes: dict | None = None,
                input_values: dict | None = None,
                quant: QuantOptions | None = None, progress: Callable[[str], None] = lambda s: None,
                profiles: tuple[dict, ...] = ()) -> DebugReport:
    """Quantize (or compress) ``model_path`` for ``target`` at ``precision`` (default: the target's debug
    precision) and compare every layer with its float twin."""
    t = table.get(target)
    if t.debug_precision is None:
        quantizing = [n for n in table.names() if table.get(n).debug_precision]
        raise EdgepackError(f"target '{t.name}' has no quantization debugger",
                            hint=f"targets with one: {', '.join(quantizing)}")
    precision = precision or t.debug_precision
    allowed = t.debug_precisions or (t.debug_precision,)
    if precision not in allowed:
        raise EdgepackError(f"debug-quant --target {t.name} examines {', '.join(allowed)}, not '{precision}'")
    quant = QuantOptions(**{**(quant or QuantOptions()).__dict__, "mixed_precision": False})
    t.check_quant(quant)
    progress("loading the model and calibration data")
    model = load_model(Path(model_path), input_shapes=input_shapes, input_values=input_values,
                       preflight=t.preflight)
    cal = load_calibration(calibration, model, preprocess=preprocess, holdout=holdout,
                           synthetic_samples=N_SYNTHETIC, synthetic_bytes=SYNTHETIC_BYTES)
    progress("computing fp32 reference outputs")
    reference = reference_outputs(model, cal.holdout)
    floor = calibration_floor(model, cal, progress) if precision in CALIBRATED else None
    job = Job(precision, cal, reference, gate(precision), quant, profiles, progress=progress)
    names = [o.name for o in model.graph.output]
    result = t.quantize_debug(model, job)
    return DebugReport(str(model_path), t.name, precision, result.method, cal.describe(),
                       list(cal.warnings), result.figures, result.layers, result.ranked,
                       floor_figures(floor, reference, names, job.gate) if floor is not None else None)
