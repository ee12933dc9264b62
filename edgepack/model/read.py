"""Step 1 of loading: read an ONNX file (and its external data) into memory with clear errors."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto

from edgepack.errors import ModelError
from edgepack.model.graphutil import subgraphs

PROTOBUF_LIMIT = 2**31 - 1  # bytes: protobuf cannot serialize a message larger than this


def one_line(err: BaseException | str, limit: int = 300) -> str:
    """An exception message squeezed onto one line and cut to ``limit`` characters."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_model(path: str | Path) -> ModelProto:
    """Parse ``path`` as an ONNX model and load any external tensor data found next to it."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist", hint="check the path")
    if path.is_dir():
        raise ModelError(f"{path} is a directory, not an ONNX file", hint="pass the .onnx file itself")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as err:
        raise _unreadable(path, one_line(err)) from err
    if model.ir_version == 0 or not model.HasField("graph"):
        raise _unreadable(path, "no ir_version or graph in the file")
    _load_external_data(model, path)
    return model


def _unreadable(path: Path, why: str) -> ModelError:
    return ModelError(f"{path} is not a readable ONNX model ({why})",
                      hint="re-export it, or download it again if it may be truncated")


def _tensors(graph: GraphProto) -> Iterator[TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == AttributeProto.TENSORS:
                yield from attr.tensors
        for sub in subgraphs(node):
            yield from _tensors(sub)


def _load_external_data(model: ModelProto, path: Path) -> None:
    base = path.parent.resolve()
    external = [t for t in _tensors(model.graph) if t.data_location == TensorProto.EXTERNAL]
    if not external:
        return
    for tensor in external:
        _check_external(tensor, path, base)
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(base))
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelError(f"{path}: could not read its external data ({one_line(err)})",
                         hint="re-export the model with its external data files beside it") from err


def _check_external(tensor: TensorProto, path: Path, base: Path) -> None:
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    target = (base / location).resolve()
    if not location or Path(location).is_absolute() or not target.is_relative_to(base):
        raise ModelError(f"{path}: tensor '{tensor.name}' points to external data '{location}' "
                         "outside the model's folder", hint="re-export with relative external data paths")
    if not target.is_file():
        raise ModelError(f"{path}: external data file '{location}' for tensor '{tensor.name}' "
                         f"is missing (looked in {base})",
                         hint=f"put '{location}' next to the model, or re-export it with its weights inline")
    end = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
    if end > target.stat().st_size:
        raise ModelError(f"{path}: external data file '{location}' is shorter than tensor "
                         f"'{tensor.name}' needs ({end} bytes)", hint="copy the complete file again")


def tensor_nbytes(tensor: TensorProto) -> int:
    """Data size of a tensor from its dims and type, without touching (copying) its bytes."""
    count = 1
    for d in tensor.dims:
        count *= d
    if tensor.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return tensor.ByteSize()
    return count * max(1, onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize)


def fits_protobuf(model: ModelProto, margin: int = 64 * 2**20) -> bool:
    """Whether ``model`` can be serialized as one protobuf (an estimate that never serializes it)."""
    graph = model.graph
    size = sum(tensor_nbytes(t) for t in graph.initializer)
    size += sum(n.ByteSize() for n in graph.node) + sum(s.ByteSize() for s in graph.sparse_initializer)
    size += sum(f.ByteSize() for f in model.functions)
    return size + margin <= PROTOBUF_LIMIT
