"""Infinite values and QDQ: a ``-inf`` constant (attention masks) or a ``log(0)`` seen in calibration gives a
tensor an infinite range, hence an infinite scale: NaN outputs, or an HTP graph QNN refuses to build. A finite
mask value does the same to the resolution: MiniLM's exported mask is ``(1 - mask) * finfo(float32).min``, and
the scores it is added to then share one 8-bit grid with -3.4e38 (attention probabilities at 1 dB SNR on
onnxruntime's CPU, the encoder at cosine 0.79); such constants are treated as infinite.

The fix, in three steps:
- ``replace_infinite_constants``: +-inf in float initializers become +-``BIG`` (finite);
- ``finite_ranges``: for tensors computed from those constants, or whose calibrated values are infinite, the
  quantization range is set from their *real* values (those below ``BIG / 2`` in magnitude), widened by
  ``MARGIN`` on a side where masked or infinite values were seen. Quantization saturates those values at the
  edge: a masked logit lands ``MARGIN`` below the lowest real one, so after Softmax its weight is below
  e^-16, as good as zero, while the real values keep their resolution;
- ``settle_constants``: the +-BIG entries then take that edge value of their consumers' ranges. A mask
  holding -1e4 quantizes with a scale of 39 and HTP's quantized Add, working at its inputs' coarsest scale,
  then flattens the real logits to two levels (measured); at the edge value its scale matches the output's.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

BIG = 1.0e4
MARGIN = 16.0
FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)
WEIGHT_READERS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "MatMul": (0, 1), "Gemm": (0, 1, 2), "Gather": (0,),
                  "LayerNormalization": (1, 2), "BatchNormalization": (1, 2, 3, 4), "InstanceNormalization": (1, 2)}


def replace_infinite_constants(model: onnx.ModelProto) -> list[str]:
    """Replace +-inf, and finite mask values of magnitude >= BIG (``finfo(float32).min``, -1e9, -1e4: what
    exporters write for "masked"), in float initializers by +-BIG, in place; the names of the initializers
    changed. Weights (what Conv, MatMul, Gemm, Gather read as their data) are left alone."""
    changed = []
    weights = {n.input[i] for n in model.graph.node if n.op_type in WEIGHT_READERS
               for i in WEIGHT_READERS[n.op_type] if i < len(n.input)}
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.data_type not in FLOATS or tensor.name in weights:
            continue
        value = numpy_helper.to_array(tensor)
        masked = np.isinf(value) | (np.abs(value.astype(np.float64)) >= BIG)
        if masked.any():
            fixed = np.where(masked, np.sign(value) * BIG, value).astype(value.dtype)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(fixed, tensor.name))
            changed.append(tensor.name)
    return changed


def downstream(graph: onnx.GraphProto, names) -> list[str]:
    """Every tensor computed (transitively) from ``names``, in graph order."""
    reached, out = set(names), []
    for node in graph.node:
        if reached.intersection(node.input):
            for o in node.output:
                if o and o not in reached:
                    reached.add(o)
                    out.append(o)
    return out


def finite_ranges(model: onnx.ModelProto, samples: list[dict], tensors) -> dict[str, dict]:
    """``{tensor: {"rmin", "rmax"}}`` quantization overrides for the ``tensors`` holding masked or infinite
    values on ``samples`` (float tensors only; the others get nothing)."""
    wanted = [t for t in dict.fromkeys(tensors) if _is_float(model, t)]
    if not wanted:
        return {}
    values = _run(model, samples, wanted)
    out = {}
    for name, arrays in values.items():
        v = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
        low, high = v <= -BIG / 2, v >= BIG / 2
        real = v[~low & ~high & np.isfinite(v)]
        if not (low.any() or high.any()) and real.size == v.size:
            continue
        lo = min(float(real.min()), 0.0) if real.size else 0.0
        hi = max(float(real.max()), 0.0) if real.size else 0.0
        out[name] = {"rmin": np.array(lo - (MARGIN if low.any() else 0.0), np.float32),
                     "rmax": np.array(hi + (MARGIN if high.any() else 0.0), np.float32)}
    return out


def settle_constants(model: onnx.ModelProto, replaced: list[str], ranges: dict[str, dict]) -> None:
    """Give the +-BIG entries of the ``replaced`` initializers the lowest rmin / highest rmax of their
    consumers' outputs (``ranges``), in place; entries of a constant whose consumers have no range stay."""
    inits = {t.name: t for t in model.graph.initializer}
    for name in replaced:
        outs = [o for n in model.graph.node if name in n.input for o in n.output if o in ranges]
        if not outs:
            continue
        low = min(float(ranges[o]["rmin"]) for o in outs)
        high = max(float(ranges[o]["rmax"]) for o in outs)
        value = numpy_helper.to_array(inits[name])
        fixed = np.where(value <= -BIG, low, np.where(value >= BIG, high, value)).astype(value.dtype)
        inits[name].CopyFrom(numpy_helper.from_array(fixed, name))


def nonfinite_scales(qdq: onnx.ModelProto) -> list[str]:
    """Float tensors of a QDQ model whose QuantizeLinear scale is infinite or NaN."""
    inits = {t.name: t for t in qdq.graph.initializer}
    bad = []
    for node in qdq.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in inits:
            scale = numpy_helper.to_array(inits[node.input[1]])
            if not np.isfinite(scale).all():
                bad.append(node.input[0])
    return bad


def _is_float(model: onnx.ModelProto, name: str) -> bool:
    g = model.graph
    for vi in list(g.value_info) + list(g.output):
        if vi.name == name:
            return vi.type.tensor_type.elem_type in FLOATS
    return False


def _run(model: onnx.ModelProto, samples: list[dict], names: list[str]) -> dict[str, list[np.ndarray]]:
    """The values of ``names`` on every sample (onnxruntime CPU on a copy exposing them as outputs)."""
    import onnxruntime as ort
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    infos = {vi.name: vi for vi in m.graph.value_info}
    m.graph.output.extend(infos[n] for n in names if n not in have and n in infos)
    session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    got: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for sample in samples:
        for n, value in zip(names, session.run(names, sample)):
            got[n].append(value)
    return got
