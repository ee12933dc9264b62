"""Steps 3, 4 and 8 (inputs): the model's real inputs, shape overrides and the dynamic-dim check."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
from onnx import ModelProto, ValueInfoProto

from edgepack.errors import DynamicShapeError, ModelError
from edgepack.model.graphutil import short_shape, tensor_shape

_FORMAT = "write NAME=D1,D2,... with positive integers, e.g. data_0=1,3,224,224"


def parse_input_shape(text: str) -> tuple[str, list[int]]:
    """Parse ``NAME=D1,D2,...`` (split on the last '=', so names may contain '=' ':' '/' '.')."""
    name, sep, dims_text = text.strip().rpartition("=")
    name = name.strip()
    if not sep:
        raise ModelError(f"input shape '{text}' has no '='", hint=_FORMAT)
    if not name:
        raise ModelError(f"input shape '{text}' has no input name before '='", hint=_FORMAT)
    if not dims_text.strip():
        raise ModelError(f"input shape '{text}' has no dimensions after '='", hint=_FORMAT)
    dims: list[int] = []
    for part in dims_text.split(","):
        part = part.strip()
        if not re.fullmatch(r"[0-9]+", part) or int(part) <= 0:
            raise ModelError(f"input shape '{text}': dimension '{part}' is not a positive integer",
                             hint=_FORMAT)
        dims.append(int(part))
    return name, dims


def drop_initializer_inputs(model: ModelProto) -> int:
    """Remove graph inputs that are initializers (old IR < 4 exports list weights as inputs).

    They are constants, not inputs. The IR version is raised to 4, where that is allowed.
    Returns how many inputs were removed.
    """
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    keep = [vi for vi in graph.input if vi.name not in weights]
    removed = len(graph.input) - len(keep)
    if removed:
        del graph.input[:]
        graph.input.extend(keep)
        model.ir_version = max(model.ir_version, 4)
    return removed


def apply_input_shapes(model: ModelProto, overrides: dict[str, list[int]], path: Path) -> None:
    """Fix input dims in place; only dynamic dims may change, static ones must match."""
    inputs = {vi.name: vi for vi in model.graph.input}
    for name, dims in overrides.items():
        if name not in inputs:
            raise ModelError(f"{path} has no input named '{name}'; its inputs are: "
                             + ", ".join(f"'{n}'" for n in inputs),
                             hint="use one of these names in --input-shape")
        _override(inputs[name], [int(d) for d in dims], path)


def _override(vi: ValueInfoProto, dims: list[int], path: Path) -> None:
    if not vi.type.HasField("tensor_type"):
        raise ModelError(f"{path}: input '{vi.name}' is not a tensor; its shape cannot be set",
                         hint="only tensor inputs are supported")
    declared = tensor_shape(vi)
    wanted = "[" + ",".join(map(str, dims)) + "]"
    if any(d <= 0 for d in dims):
        raise ModelError(f"{path}: shape {wanted} for input '{vi.name}' has a non-positive dim",
                         hint="every dimension must be a positive integer")
    if declared is not None and len(declared) != len(dims):
        raise ModelError(f"{path}: input '{vi.name}' is declared as {short_shape(declared)} "
                         f"(rank {len(declared)}) but the override {wanted} has rank {len(dims)}",
                         hint=f"give {len(declared)} dimensions for '{vi.name}'")
    for axis, (old, new) in enumerate(zip(declared or [], dims)):
        if isinstance(old, int) and old != new:
            raise ModelError(f"{path}: input '{vi.name}' has static dim {axis} = {old} "
                             f"({short_shape(declared)}); the override asks for {new}",
                             hint="only dynamic dimensions can be overridden")
    shape = vi.type.tensor_type.shape
    shape.Clear()
    for d in dims:
        shape.dim.add().dim_value = d


def dynamic_input_dims(model: ModelProto) -> list[tuple[str, int, str]]:
    """(input, axis, symbol) for every dynamic dim of every input; axis -1 marks an unknown rank."""
    dims: list[tuple[str, int, str]] = []
    for vi in model.graph.input:
        if not vi.type.HasField("tensor_type"):
            continue
        shape = tensor_shape(vi)
        if shape is None:
            dims.append((vi.name, -1, "unknown rank"))
            continue
        dims.extend((vi.name, axis, str(d)) for axis, d in enumerate(shape) if not isinstance(d, int))
    return dims


def require_static_inputs(model: ModelProto) -> None:
    dims = dynamic_input_dims(model)
    if dims:
        raise DynamicShapeError(dims)


MAX_TENSOR_BYTES = 2 ** 31   # one input or activation; past this no edge runtime (nor protobuf) holds it


def require_reasonable_sizes(model: ModelProto, values=None) -> None:
    """ModelError listing every tensor (inputs by default) larger than ``MAX_TENSOR_BYTES`` for one sample.

    Checked before any sample is made: a 1x3x100000x100000 input would otherwise end in MemoryError."""
    too_big = []
    for vi in (model.graph.input if values is None else values):
        shape = tensor_shape(vi)
        if shape is None or not all(isinstance(d, int) for d in shape):
            continue
        try:
            elem = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).itemsize
        except (KeyError, ValueError, TypeError):   # undefined or exotic element type: not ours to judge
            continue
        size = elem * int(np.prod(shape, dtype=np.float64))
        if size > MAX_TENSOR_BYTES:
            too_big.append((vi.name, shape, size))
    if too_big:
        listed = "; ".join(f"'{n}' {list(s)} is {_gib(b)} per sample" for n, s, b in too_big[:10])
        more = f" (and {len(too_big) - 10} more)" if len(too_big) > 10 else ""
        raise ModelError(f"{len(too_big)} tensor(s) exceed {_gib(MAX_TENSOR_BYTES)}: {listed}{more}",
                         hint="edge runtimes cannot hold tensors this large: give smaller dynamic dimensions with "
                              "--input-shape, or export the model with a smaller input")


def _gib(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GiB" if n >= 2 ** 30 else f"{n / 2 ** 20:.1f} MiB"


def forget_shapes(model: ModelProto) -> None:
    """Drop the exporter's value_info and output dims; they are recomputed for the fixed inputs.

    Declared shapes may be symbolic, stale or simply wrong; inference and onnxruntime are not.
    Output element types are kept.
    """
    del model.graph.value_info[:]
    for out in model.graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
