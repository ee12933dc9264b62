"""The one table of precisions: precision -> accuracy gate at build -> self-check tolerance on the device.

The host reads the gate when it verifies a converted model against the fp32 ONNX reference; the device
reads the tolerance when it runs the bundle's samples (``Runtime.self_check``). A target declares which of
these precisions it offers; a new precision is one row here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Gate:
    """Accuracy gate on the held-out samples (see ``compare.failures``)."""

    min_cosine: float = 0.9999
    max_rel_error: float = 1e-3      # max |got - ref| / max |ref|
    min_snr_db: float | None = None  # signal-to-noise ratio of the whole output over all samples
    min_top1: float | None = None    # top-1 agreement, classifier-like outputs only
    cosine_over: str = "min"         # judge the worst sample ("min") or the average over samples ("mean")
    # task figures (kinds.py), judged only on outputs of that kind: probability maps' worst-sample IoU of the
    # maps thresholded at 0.5 and at 0.3; the largest probability difference of probabilities and maps
    min_iou: float | None = None
    max_prob_error: float | None = None
    min_region: float | None = None  # probability maps: worst sample's region recall and precision (regions.py)
    # "task": a probability map (kinds.py) is judged by min_iou / min_region instead of its max error. One
    # pixel on a region's edge that crosses the threshold is a 100% max error at every precision, while the
    # map's regions, what a detector's post-processing reads, are unchanged (PP-OCR det: IoU@0.5 0.97 at 100%).
    # Likewise a CTC recognizer's per-position distributions are judged by min_text (the share of samples
    # whose best path reads the same text, kinds.text_agreement) instead of their max error.
    maps: str = "values"
    min_text: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Tolerance:
    """On-device self-check: passes when ``max_abs <= atol + rtol * max|ref|`` and ``cosine >= min_cosine``."""

    rtol: float
    atol: float
    min_cosine: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Precision:
    name: str
    summary: str
    gate: Gate
    tolerance: Tolerance


# The quantized precisions judge probability maps by their regions: IoU of the maps thresholded at 0.5 and
# 0.3, and the share of regions found both ways, at least 0.95 on the worst held-out sample; and a CTC
# recognizer's output by its text: the same text on at least 95% of the held-out samples.
MAPS = dict(maps="task", min_iou=0.95, min_region=0.95, min_text=0.95)

PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("fp32", "float32 weights and activations", Gate(), Tolerance(1e-3, 1e-5, 0.9999)),
    Precision("fp16", "float16 weights (and fp16 compute where the backend does it)", Gate(0.999, 1e-2),
              Tolerance(1e-2, 1e-3, 0.999)),
    Precision("int8-dynamic", "int8 weights per channel, float activations (hybrid kernels)",
              Gate(0.99, 0.1), Tolerance(0.1, 1e-2, 0.99)),
    # int8 is judged on the mean cosine over the held-out samples plus the SNR over all of them: per-sample
    # minima over hundreds of real samples mostly measure the one sample whose scores sit on a decision tie
    # (PP-OCR's 2-class direction scores: worst-sample cosine 0.84 at 98% top-1 agreement).
    Precision("int8", "int8 weights per channel, int8 activations calibrated per tensor (full integer)",
              Gate(0.98, 0.5, min_snr_db=15.0, cosine_over="mean", **MAPS), Tolerance(0.1, 1e-2, 0.98)),
    # TFLite's 16x8 mode: int16 activations leave mostly the int8 weights' rounding (measured on the fitted
    # models: +7.6 dB SNR over int8 on small_cnn, +8.3 dB on small_transformer, +15 dB on an outlier-channel
    # CNN), so its gate is int8's tightened to w8a16's level.
    Precision("int16x8", "int8 weights per channel, int16 activations (TFLite 16x8, full integer)",
              Gate(0.99, 0.2, min_snr_db=20.0, cosine_over="mean", **MAPS), Tolerance(0.05, 1e-2, 0.99)),
    # Core ML weight compression (coremltools.optimize.coreml) on an fp16 ML Program; activations stay fp16.
    Precision("w8", "int8 linear weights per output channel, fp16 compute (Core ML)", Gate(0.99, 0.1),
              Tolerance(0.1, 1e-2, 0.99)),
    Precision("palettize8", "8-bit weight palettes (lookup tables), fp16 compute (Core ML)", Gate(0.99, 0.1),
              Tolerance(0.1, 1e-2, 0.99)),
    Precision("palettize6", "6-bit weight palettes, fp16 compute (Core ML)", Gate(0.98, 0.2),
              Tolerance(0.2, 1e-2, 0.98)),
    Precision("palettize4", "4-bit weight palettes, fp16 compute (Core ML)",
              Gate(0.95, 0.5, cosine_over="mean"), Tolerance(0.5, 5e-2, 0.95)),
    Precision("w4-block", "int4 linear weights in blocks of 32, fp16 compute (Core ML, iOS18+)",
              Gate(0.97, 0.3, cosine_over="mean"), Tolerance(0.3, 2e-2, 0.97)),
    # pruning without retraining (fine-tune for sparsity first): a loose gate that still catches a broken model
    Precision("prune", "50% magnitude-pruned weights in sparse storage, fp16 compute (Core ML)",
              Gate(0.9, 1.0, cosine_over="mean"), Tolerance(1.0, 0.1, 0.9)),
    Precision("prune-palettize4", "50% pruned, 4-bit palettes of the kept weights (Core ML, iOS18+)",
              Gate(0.9, 1.0, cosine_over="mean"), Tolerance(1.0, 0.1, 0.9)),
    # Qualcomm HTP (QDQ models on onnxruntime's QNN execution provider). w8a8 is the int8 scheme (int8 weights per
    # channel, 8-bit activations per tensor) and is judged like int8. w8a16's 16-bit activations leave mostly the
    # weights' rounding, so its gate and tolerance are tighter; its relative max error (0.2) also catches the
    # detector boxes HTP's 16-bit Sigmoid can push 150 px off on a 640-px image while cosine stays 0.996.
    Precision("w8a8", "int8 weights per channel, 8-bit activations per tensor (Qualcomm HTP: QDQ, uint8; Core ML: "
                      "quantize / dequantize, int8, iOS17+)",
              Gate(0.98, 0.5, min_snr_db=15.0, cosine_over="mean", **MAPS), Tolerance(0.1, 1e-2, 0.98)),
    Precision("w8a16", "int8 weights per channel, uint16 activations per tensor (Qualcomm HTP, QDQ)",
              Gate(0.99, 0.2, min_snr_db=20.0, cosine_over="mean", **MAPS), Tolerance(0.05, 1e-2, 0.99)),
)}
LOOSEST = "int8"   # what a device assumes for a precision a newer build wrote and this runtime does not know


def gate(precision: str, **overrides) -> Gate:
    """The build-time gate of ``precision`` with the given fields replaced (None values are ignored)."""
    base = PRECISIONS[precision].gate
    changes = {k: v for k, v in overrides.items() if v is not None}
    return Gate(**{**base.as_dict(), **changes}) if changes else base


def tolerance(precision: str, rtol=None, atol=None, min_cosine=None, recorded: dict | None = None) -> dict:
    """The self-check tolerance for ``precision``, with explicit overrides.

    ``recorded``: the target's ``self_check`` entry, written by the build from the deviation it measured on
    the bundled samples (with a margin); it takes precedence over the per-precision default."""
    base = PRECISIONS.get(precision, PRECISIONS[LOOSEST]).tolerance.as_dict()
    if recorded:
        base = {k: recorded.get(k, v) for k, v in base.items()}
    given = {"rtol": rtol, "atol": atol, "min_cosine": min_cosine}
    return {k: (given[k] if given[k] is not None else v) for k, v in base.items()}
