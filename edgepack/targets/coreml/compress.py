"""Weight compression of an ML Program through ``coremltools.optimize.coreml``, as a table of modes.

Each mode names the oldest deployment level that can run it (constexpr ops arrive with the OS: per-block
int4 and joint sparse+palettized weights need iOS18) and how to apply it. coremltools logs and skips what
it cannot compress (small tensors, unsupported ops), so ``summarize`` inspects the result: constexpr_* op
counts, the weights left plain, and weight bytes before and after.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import EdgepackError
from .deploy import LEVEL_NAME, level

THRESHOLD = 2048          # weights of at most this many elements stay as they are (coremltools' default too)
SPARSITY = 0.5            # magnitude pruning: share of each weight tensor set to zero


KMEANS_MAX = 1 << 18      # larger weights get uniform palettes: k-means over a million values takes minutes


def _kmeans_or_uniform() -> str:
    return "kmeans" if importlib.util.find_spec("sklearn") is not None else "uniform"


def _large_weights(mlmodel) -> list[str]:
    """Names of the const ops holding float weights of more than KMEANS_MAX elements."""
    ops = mlmodel._mil_program.functions["main"].operations
    return [op.name for op in ops if op.op_type == "const" and isinstance(op.outputs[0].val, np.ndarray)
            and op.outputs[0].val.dtype.kind == "f" and op.outputs[0].val.size > KMEANS_MAX]


def _linear(dtype, granularity, block_size=32):
    def apply(mlmodel):
        from coremltools.optimize import coreml as cto
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype=dtype, granularity=granularity,
                                         block_size=block_size, weight_threshold=THRESHOLD)
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    return apply


def _palettize(nbits, joint=False):
    def apply(mlmodel):
        from coremltools.optimize import coreml as cto
        def config(mode):
            return cto.OpPalettizerConfig(mode=mode, nbits=nbits, granularity="per_tensor", weight_threshold=THRESHOLD)
        mode = _kmeans_or_uniform()
        large = {name: config("uniform") for name in _large_weights(mlmodel)} if mode == "kmeans" else {}
        cfg = cto.OptimizationConfig(global_config=config(mode), op_name_configs=large or None)
        return cto.palettize_weights(mlmodel, cfg, joint_compression=joint)
    return apply


def _prune(mlmodel):
    from coremltools.optimize import coreml as cto
    op = cto.OpMagnitudePrunerConfig(target_sparsity=SPARSITY, weight_threshold=THRESHOLD)
    return cto.prune_weights(mlmodel, cto.OptimizationConfig(global_config=op))


@dataclass(frozen=True)
class Mode:
    min_level: int                          # oldest deployment level (16: iOS16) that runs it
    apply: Callable                         # MLModel -> compressed MLModel
    summary: str


MODES: dict[str, Mode] = {
    "w8": Mode(16, _linear("int8", "per_channel"), "int8 linear symmetric weights, per output channel"),
    "palettize8": Mode(16, _palettize(8), "8-bit lookup table per tensor (k-means with scikit-learn up to 262,144 "
                                          "values a tensor, else uniform levels)"),
    "palettize6": Mode(16, _palettize(6), "6-bit lookup table per tensor"),
    "palettize4": Mode(16, _palettize(4), "4-bit lookup table per tensor"),
    "prune": Mode(16, _prune, f"magnitude pruning to {int(SPARSITY * 100)}% sparsity, sparse storage"),
    "w4-block": Mode(18, lambda m: _linear("int4", "per_channel")(_linear("int4", "per_block", 32)(m)),
                     "int4 linear symmetric weights in blocks of 32 (per channel where the input axis does not "
                     "split into blocks)"),
    "prune-palettize4": Mode(18, lambda m: _palettize(4, joint=True)(_prune(m)),
                             f"{int(SPARSITY * 100)}% magnitude pruning, then 4-bit palettes of the kept values"),
}


OTHER_LEVELS = {"w8a8": 17}     # precisions beyond weight compression: int8 activations need iOS17's quantize


def check(precision: str, deployment: str) -> None:
    """EdgepackError when ``precision`` needs a newer deployment target than ``deployment``."""
    mode = MODES.get(precision)
    min_level = mode.min_level if mode is not None else OTHER_LEVELS.get(precision)
    if min_level is None or level(deployment) >= min_level:
        return
    need = LEVEL_NAME[min_level]
    raise EdgepackError(
        f"Core ML precision '{precision}' needs deployment target {need} or newer; this build targets "
        f"{deployment}", hint=f"build for a device profile whose [os] minimum_deployment_target is {need} "
                              f"(or newer), or pick w8, palettize4/6/8 or prune, which run on {deployment}")


def compress(mlmodel, precision: str):
    """The compressed MLModel for ``precision`` (a key of MODES); fp16/fp32 return it unchanged."""
    mode = MODES.get(precision)
    return mode.apply(mlmodel) if mode else mlmodel


def weight_bytes(program) -> dict:
    """Bytes of constant payload in a MIL program: plain weights (float ``const`` of rank >= 2 and more than
    THRESHOLD elements; vectors such as biases are never compressed),
    small constants, and compressed weights (the constant inputs of constexpr_* ops), with op counts."""
    out = {"plain_weights": 0, "plain_weight_bytes": 0, "small_const_bytes": 0, "compressed_bytes": 0,
           "constexpr_ops": {}, "plain_names": []}
    fn = program.functions["main"]
    consumed = {}
    for op in fn.operations:
        if op.op_type.startswith("constexpr_"):
            out["constexpr_ops"][op.op_type] = out["constexpr_ops"].get(op.op_type, 0) + 1
            for v in op.inputs.values():
                consumed[id(v)] = True
    for op in fn.operations:
        if op.op_type != "const":
            continue
        val = op.outputs[0].val
        nbytes = _stored_bytes(op.outputs[0]) if isinstance(val, np.ndarray) else 0
        if id(op.outputs[0]) in consumed:
            out["compressed_bytes"] += nbytes
        elif isinstance(val, np.ndarray) and val.size > THRESHOLD and val.ndim >= 2 and val.dtype.kind == "f":
            out["plain_weights"] += 1
            out["plain_weight_bytes"] += nbytes
            out["plain_names"].append(op.name)
        else:
            out["small_const_bytes"] += nbytes
    return out


def _stored_bytes(var) -> int:
    """Bytes a constant takes in the weight file: sub-byte types (uint1..uint6, int4) are packed, while
    coremltools holds them one per numpy byte."""
    from coremltools.converters.mil.mil import types
    name = types.builtin_to_string(var.dtype) or ""
    digits = "".join(c for c in name if c.isdigit())
    bits = int(digits) if digits else (1 if name == "bool" else np.asarray(var.val).dtype.itemsize * 8)
    return (int(np.asarray(var.val).size) * bits + 7) // 8


def summarize(before, after, precision: str) -> dict:
    """What compression actually did: constexpr ops made, weights left plain, bytes before and after."""
    b, a = weight_bytes(before), weight_bytes(after)
    total_b = b["plain_weight_bytes"] + b["compressed_bytes"]
    total_a = a["plain_weight_bytes"] + a["compressed_bytes"]
    return {"mode": precision, "summary": MODES[precision].summary if precision in MODES else "",
            "weights": b["plain_weights"], "compressed_ops": a["constexpr_ops"],
            "left_uncompressed": a["plain_weights"], "left_names": a["plain_names"][:10], "weight_bytes_before": total_b, "weight_bytes_after": total_a,
            "ratio": round(total_a / total_b, 4) if total_b else None}


def _grid_of(op) -> np.ndarray | None:
    """The integer grid (stored values minus zero point) of a constexpr dequantization op, else None."""
    if op.op_type == "constexpr_affine_dequantize":
        q, zp, axis = op.quantized_data.val, op.zero_point.val, int(op.axis.val)
        zp = np.asarray(zp, dtype=np.int64)
        if zp.ndim == 1:
            zp = zp.reshape([-1 if d == axis % q.ndim else 1 for d in range(q.ndim)])
        return q.astype(np.int64) - zp
    if op.op_type == "constexpr_blockwise_shift_scale":
        q = op.data.val
        off = op.offset.val if getattr(op, "offset", None) is not None else 0
        if q is None or np.asarray(q).dtype.kind not in "iu":
            return None
        try:
            return q.astype(np.int64) - np.asarray(off, dtype=np.int64)
        except ValueError:            # blocked offsets: not a per-channel grid
            return None
    return None


def model_grids(program, qdq) -> dict:
    """For a quantized ONNX model in (``qdq``: ``edgepack.model.qdq.QdqInfo``): how many of the program's
    8-bit weights hold exactly the integer grid the model shipped (as stored or transposed, as the MIL
    lowering lays out MatMul weights). With ``w8`` a symmetric per-channel int8 model keeps its own grid:
    coremltools' scale (max |w| / 127 per channel, of the dequantized weight) lands on the same integers,
    with the scale rounded to fp16."""
    from ...model.qdq import eight_bit_weights, grid_key
    eight = eight_bit_weights(qdq)
    known = {grid_key(g) for w in eight for g in ((w.grid, w.grid.T) if w.grid.ndim == 2 else (w.grid,))}
    ops = [op for op in program.functions["main"].operations if op.op_type.startswith("constexpr_")]
    grids = [g for g in (_grid_of(op) for op in ops) if g is not None]
    same = sum(1 for g in grids if grid_key(g) in known)
    return {"int8_weights_in_model": len(eight),
            "small_left_fp16": sum(1 for w in eight if w.grid.size <= THRESHOLD),
            "int8_weights_in_program": len(grids), "model_grid_kept": same}
