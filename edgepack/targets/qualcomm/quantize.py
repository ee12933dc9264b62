"""QDQ quantization for Qualcomm HTP with onnxruntime's QNN helpers (``get_qnn_qdq_config`` + ``quantize``).

``quantize(model, samples)`` prepares the model (``preprocess.prepare``), sets the tensor overrides HTP needs
beyond what onnxruntime's helper sets, calibrates on ``samples`` and returns the QDQ model. Node names in
``overrides`` are those of ``prepare(model)`` (the same as the model's own for every node prepare keeps).
Overrides HTP needs that ``get_qnn_qdq_config`` does not set:
- LayerNormalization's scale: uint8 (HTP refuses the int8 symmetric weight int8 weights give it, and the
  node falls back to CPU, splitting transformers into many partitions);
- tensors computed from +-inf constants, or with infinite calibrated values: a finite range (``finite.py``);
- at 16-bit activations, a Sigmoid whose output is a model output and whose values 8 bits over their own
  range resolve finer than HTP's fixed 16-bit Sigmoid grid: 8 bits (``eight_bit_outputs``).

Mixed precision quantizes the same model many times with different overrides. ``calibrate(model, samples)``
does the work those quantizations share once: ``prepare``, the finite ranges, and onnxruntime's own
calibration pass (its tensor ranges are kept in onnxruntime's calibration cache file, which
``quantize_static`` reads instead of running the model again; onnxruntime versions without that parameter
calibrate every time). ``quantize(..., calibrated=c)`` then only quantizes.
"""
from __future__ import annotations

import inspect
import re
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader

from ...errors import ConversionError, EdgepackError
from . import finite
from .preprocess import prepare, quiet

ACTIVATIONS = ("uint8", "uint16")
WEIGHTS = ("int8", "uint8")
OVERRIDES = ("a16", "float")           # 16-bit activations for a node's outputs | the node left unquantized
METHODS = ("minmax", "percentile", "entropy")
PRECISIONS = {"w8a8": ("uint8", "int8"), "w8a16": ("uint16", "int8")}   # precision -> (activations, weights)
LARGE_MODEL = 1 << 30                  # past this the model goes to the quantizer with external data


class Calibrated:
    """What every quantization of one model on one calibration set shares (see ``calibrate``)."""

    def __init__(self, model: onnx.ModelProto, samples: list[dict[str, np.ndarray]], method: str = "minmax",
                 model_ranges: dict | None = None):
        _check_args("uint8", "int8", method, samples)
        self.samples, self.method = samples, method
        self.prepared = prepare(model)
        replaced = finite.replace_infinite_constants(self.prepared)
        self.ranges = finite.finite_ranges(self.prepared, samples, finite.downstream(self.prepared.graph, replaced))
        finite.settle_constants(self.prepared, replaced, self.ranges)
        self.ranges.update(own_ranges(self.prepared, model_ranges or {}, self.ranges))
        self.eight_bit = eight_bit_outputs(self.prepared, samples)
        self.cache: Path | None = None
        if "calibration_cache_path" in _quantize_static_parameters():
            folder = tempfile.mkdtemp(prefix="edgepack-qnn-cal-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
            self.cache = Path(folder) / f"ranges-{method}.json"

    @property
    def reused(self) -> bool:
        """True once onnxruntime's ranges are cached (later quantizations skip its calibration pass)."""
        return self.cache is not None and self.cache.is_file()


def calibrate(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]], method: str = "minmax",
              model_ranges: dict | None = None) -> Calibrated:
    """Prepare ``model`` and calibrate once for any number of ``quantize(..., calibrated=...)`` calls."""
    return Calibrated(model, samples, method, model_ranges)


HTP_SIGMOID16_STEP = 2.0 ** -15      # HTP's 16-bit Sigmoid moves in these steps (truncating), not its 1/65536
_LAYOUT = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity")


def eight_bit_outputs(prepared: onnx.ModelProto, samples: list[dict]) -> dict[str, list[float]]:
    """Sigmoid outputs (tensor -> calibrated [lo, hi]) that are model outputs, directly or through reshapes,
    and whose values 8 bits over their own range resolve finer than 16 bits on the fixed [0, 1] grid QNN
    requires of a 16-bit Sigmoid: range / 255 under ``HTP_SIGMOID16_STEP``, values under 0.0078. onnxruntime
    gives such an output scale 1/65536; HTP's simulator computed openWakeWord's alexa head (1e-5 ... 4e-3)
    in steps of 2^-15 rounded down, 40% of the held-out scores 0 and 14% of the largest off, where 8 bits
    with the calibrated scale (1.5e-5) were within 4%. One float pass over ``samples`` when such a Sigmoid
    exists."""
    from ...model.ort import reference_outputs
    users: dict[str, list] = {}
    for n in prepared.graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    outputs = {o.name for o in prepared.graph.output}
    heads = {}
    for node in (n for n in prepared.graph.node if n.op_type == "Sigmoid"):
        name = node.output[0]
        for _ in range(8):
            if name in outputs:
                heads[node.output[0]] = name
                break
            after = users.get(name, [])
            if len(after) != 1 or after[0].op_type not in _LAYOUT:
                break
            name = after[0].output[0]
    if not heads or not samples:
        return {}
    values = reference_outputs(prepared, samples)
    found = {}
    for tensor, out in heads.items():
        v = np.concatenate([np.ravel(s[out]) for s in values]).astype(np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
        if (hi - lo) / 255.0 < HTP_SIGMOID16_STEP:
            found[tensor] = [lo, hi]
    return found


def eight_bit_sigmoids(qdq: onnx.ModelProto) -> list[str]:
    """The Sigmoid nodes of a QDQ model whose output is quantized to 8 bits (in a 16-bit model: the ones
    ``eight_bit_outputs`` chose)."""
    zero_points = {i.name: i.data_type for i in qdq.graph.initializer}
    quantizers = {n.input[0]: n for n in qdq.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2}
    return [n.name for n in qdq.graph.node if n.op_type == "Sigmoid" and n.output[0] in quantizers
            and zero_points.get(quantizers[n.output[0]].input[2]) == onnx.TensorProto.UINT8]


def own_ranges(prepared: onnx.ModelProto, model_ranges: dict, finite_ranges: dict) -> dict:
    """The activation ranges a quantized model in carried (``Job.model_ranges``: tensor -> (lo, hi)), as
    ``rmin``/``rmax`` tensor overrides for the tensors ``prepare`` kept (fusions remove some). At 8 bits they
    give back the model's own scale and zero point (an int8 activation's grid is the uint8 grid with the zero
    point moved by 128); at 16 bits a finer grid over the same range. A finite-range override stays."""
    names = {o for n in prepared.graph.node for o in n.output} | {i.name for i in prepared.graph.input}
    return {name: {"rmin": np.array(min(lo, 0.0), np.float32), "rmax": np.array(max(hi, 0.0), np.float32)}
            for name, (lo, hi) in model_ranges.items() if name in names and name not in finite_ranges}


def quantize(model: onnx.ModelProto, samples: list[dict[str, np.ndarray]], *, activations: str = "uint8",
             weights: str = "int8", per_channel: bool = True, overrides: dict[str, str] | None = None,
             method: str = "minmax", calibrated: Calibrated | None = None,
             model_ranges: dict | None = None) -> onnx.ModelProto:
    """The QDQ model of ``model`` for HTP, calibrated on ``samples`` (input name -> array dicts).

    ``activations``: uint8 | uint16; ``weights``: int8 (symmetric) | uint8; ``per_channel``: Conv,
    ConvTranspose and Gemm weights per output channel (MatMul stays per-tensor: HTP has no per-channel
    MatMul). ``overrides``: ONNX node name -> "a16" (16-bit activations on its outputs) or "float" (left
    unquantized). ``method``: the calibration (minmax | percentile | entropy). ``calibrated``: the result of
    ``calibrate(model, samples, method)``, reused instead of preparing and calibrating again (``model``,
    ``samples`` and ``method`` are then its own). ``model_ranges``: a quantized model's own activation
    ranges (``Job.model_ranges``; see ``own_ranges``). Raises EdgepackError on bad arguments, ConversionError
    when the quantizer fails.
    """
    _check_args(activations, weights, method, samples)
    cal = calibrated if calibrated is not None else Calibrated(model, samples, method, model_ranges)
    prepared, ranges, samples, method = cal.prepared, cal.ranges, cal.samples, cal.method
    overrides = dict(overrides or {})
    _check_overrides(prepared, overrides)
    floated = {o for n in prepared.graph.node if overrides.get(n.name) == "float" for o in n.output}
    narrow = [t for t in cal.eight_bit if t not in floated] if activations == "uint16" else []
    qdq = _run_quantizer(prepared, samples, activations, weights, per_channel, overrides, ranges, method, cal.cache,
                         narrow)
    bad = finite.nonfinite_scales(qdq)
    if bad:       # infinite values met in calibration (log(0), x/0): quantize again with finite ranges
        ranges.update(finite.finite_ranges(prepared, samples, bad))
        qdq = _run_quantizer(prepared, samples, activations, weights, per_channel, overrides, ranges, method,
                             cal.cache, narrow)
        bad = finite.nonfinite_scales(qdq)
    if bad:
        raise ConversionError(f"QDQ quantization left infinite or NaN scales on {len(bad)} tensor(s): "
                              f"{', '.join(bad[:10])}",
                              hint="their calibration values are not finite; keep their nodes in float")
    return qdq


def tensor_overrides(model: onnx.ModelProto, overrides: dict[str, str], ranges: dict[str, dict],
                     activations: str = "uint8", narrow=()) -> dict:
    """The ``init_overrides`` given to ``get_qnn_qdq_config``: tensor -> [override dict]; ``narrow``: tensors
    kept at 8 bits in a 16-bit model (``eight_bit_outputs``).

    A tensor with a finite range (``ranges``) also names its type: onnxruntime's mixed-precision fixer
    compares a converted tensor's producer type with its override and refuses one without ``quant_type``
    ("Desired producer quant_type ... doesn't match"), which a 16-bit Softmax after a masked Add triggers."""
    from onnxruntime.quantization import QuantType
    default = {"uint8": QuantType.QUInt8, "uint16": QuantType.QUInt16}[activations]
    out: dict[str, dict] = {}
    inits = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "LayerNormalization" and len(node.input) > 1 and node.input[1] in inits:
            out[node.input[1]] = {"quant_type": QuantType.QUInt8, "symmetric": False}
        if overrides.get(node.name) == "a16":
            for o in node.output:
                if o:
                    out.setdefault(o, {})["quant_type"] = QuantType.QUInt16
    for name in narrow:
        out.setdefault(name, {})["quant_type"] = QuantType.QUInt8
    for name, r in ranges.items():
        out.setdefault(name, {}).update(r)
        out[name].setdefault("quant_type", default)
    return {name: [d] for name, d in out.items()}


def _quantize_static_parameters() -> set[str]:
    from onnxruntime.quantization import quantize_static
    return set(inspect.signature(quantize_static).parameters)


def _run_quantizer(model, samples, activations, weights, per_channel, overrides, ranges, method, cache=None,
                   narrow=()):
    from onnxruntime.quantization import CalibrationMethod, QuantType
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config
    qtypes = {"uint8": QuantType.QUInt8, "uint16": QuantType.QUInt16, "int8": QuantType.QInt8}
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    excluded = [n for n, v in overrides.items() if v == "float"]
    with tempfile.TemporaryDirectory(prefix="edgepack-qnn-q-") as tmp, quiet(), np.errstate(all="ignore"):
        src, out = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        onnx.save(model, str(src), save_as_external_data=model.ByteSize() > LARGE_MODEL)
        tensors = tensor_overrides(model, overrides, ranges, activations, narrow)
        try:
            for _ in range(MAX_TYPE_RETRIES):
                try:
                    config = get_qnn_qdq_config(str(src), _Reader(samples), calibrate_method=methods[method],
                                                activation_type=qtypes[activations], weight_type=qtypes[weights],
                                                per_channel=per_channel, init_overrides=tensors or None,
                                                nodes_to_exclude=excluded or None)
                    break
                except ValueError as exc:
                    if not _retype(tensors, str(exc), ranges):
                        raise
            _quantize_static(src, out, config, cache)
        except EdgepackError:
            raise
        except Exception as exc:     # the quantizer's own errors (bare ValueErrors, asserts)
            raise ConversionError(f"onnxruntime's QNN quantizer failed ({activations} activations, {weights} "
                                  f"weights): {type(exc).__name__}: {exc}",
                                  hint="report this model; try --precision qualcomm=w8a16 or keep the named "
                                       "node in float with --keep-float") from exc
        return onnx.load(str(out))


MAX_TYPE_RETRIES = 16
_PRODUCER_MISMATCH = re.compile(r"Desired producer quant_type for (.+) doesn't match existing type")


def _retype(tensors: dict, message: str, ranges: dict) -> bool:
    """onnxruntime's mixed-precision fixer infers each tensor's type from the nodes around it (a 16-bit
    input makes an Add produce 16 bits) and refuses a tensor override of another type. For a tensor whose
    override exists only for its finite range, switch the type it names to the other activation width and
    let the fixer try again; False when the message is not that or the tensor is not ours to change."""
    from onnxruntime.quantization import QuantType
    found = _PRODUCER_MISMATCH.search(message)
    name = found.group(1) if found else None
    if name not in ranges or name not in tensors:
        return False
    entry = tensors[name][0]
    entry["quant_type"] = (QuantType.QUInt8 if entry.get("quant_type") == QuantType.QUInt16
                           else QuantType.QUInt16)
    return True


def _quantize_static(src: Path, out: Path, config, cache: Path | None) -> None:
    """``onnxruntime.quantization.quantize`` for a StaticQuantConfig, with the calibration cache file when
    there is one (``quantize`` itself does not pass it on)."""
    from onnxruntime.quantization import quantize_static
    more = {"calibration_cache_path": str(cache)} if cache is not None else {}
    quantize_static(str(src), str(out), config.calibration_data_reader, calibrate_method=config.calibrate_method,
                    quant_format=config.quant_format, activation_type=config.activation_type,
                    weight_type=config.weight_type, op_types_to_quantize=config.op_types_to_quantize,
                    nodes_to_quantize=config.nodes_to_quantize, nodes_to_exclude=config.nodes_to_exclude,
                    per_channel=config.per_channel, reduce_range=config.reduce_range,
                    use_external_data_format=config.use_external_data_format,
                    calibration_providers=config.calibration_providers, extra_options=config.extra_options,
                    **more)


class _Reader(CalibrationDataReader):
    """Calibration samples held in memory."""

    def __init__(self, samples):
        self._it = iter(samples)

    def get_next(self):
        return next(self._it, None)


def _check_args(activations, weights, method, samples) -> None:
    for what, value, allowed in (("activations", activations, ACTIVATIONS), ("weights", weights, WEIGHTS),
                                 ("calibration method", method, METHODS)):
        if value not in allowed:
            raise EdgepackError(f"qualcomm {what} '{value}' is not one of {', '.join(allowed)}")
    if not samples:
        raise EdgepackError("QDQ quantization needs calibration samples; none were given",
                            hint="give --calibration data (or let the build make synthetic samples)")


def _check_overrides(model: onnx.ModelProto, overrides: dict[str, str]) -> None:
    names = {n.name for n in model.graph.node}
    bad_value = {n: v for n, v in overrides.items() if v not in OVERRIDES}
    unknown = [n for n in overrides if n not in names]
    if bad_value:
        raise EdgepackError(f"qualcomm overrides take {' or '.join(OVERRIDES)}; got {bad_value}")
    if unknown:
        raise EdgepackError(f"qualcomm overrides name {len(unknown)} node(s) the prepared model does not have: "
                            f"{', '.join(unknown[:10])}", hint="use node names of preprocess.prepare(model)")
