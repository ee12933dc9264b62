"""Serialize an ``ir.Graph`` to TFLite flatbuffer bytes with the schema's object API."""
from __future__ import annotations

import hashlib

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

from .ir import Graph

_DTYPES = {
    np.dtype(np.float32): fb.TensorType.FLOAT32, np.dtype(np.float16): fb.TensorType.FLOAT16,
    np.dtype(np.float64): fb.TensorType.FLOAT64, np.dtype(np.int32): fb.TensorType.INT32,
    np.dtype(np.int64): fb.TensorType.INT64, np.dtype(np.int16): fb.TensorType.INT16,
    np.dtype(np.int8): fb.TensorType.INT8, np.dtype(np.uint8): fb.TensorType.UINT8,
    np.dtype(np.bool_): fb.TensorType.BOOL, np.dtype(np.uint32): fb.TensorType.UINT32,
    np.dtype(np.uint16): fb.TensorType.UINT16, np.dtype(np.uint64): fb.TensorType.UINT64,
}


# Ops whose kernels are registered from a version above 1 (the op resolver rejects version 1).
MIN_VERSION = {"BROADCAST_TO": 2}


def tflite_type(dtype) -> int:
    try:
        return _DTYPES[np.dtype(dtype)]
    except KeyError:
        raise TypeError(f"dtype {np.dtype(dtype)} has no TFLite tensor type") from None


class _AlignedBuffer(fb.BufferT):
    """A constant buffer whose bytes start on a 16-byte boundary (kernels may read them in place)."""

    def Pack(self, builder):
        payload = self.data
        builder.StartVector(1, len(payload), 16)
        builder.head -= len(payload)
        builder.Bytes[builder.head:builder.head + len(payload)] = payload
        data = builder.EndVector()
        fb.BufferStart(builder)
        fb.BufferAddData(builder, data)
        return fb.BufferEnd(builder)


def _options_type(options) -> int:
    name = type(options).__name__
    return getattr(fb.BuiltinOptions, name[:-1])  # "Conv2DOptionsT" -> BuiltinOptions.Conv2DOptions


def serialize(graph: Graph, description: str = "edgepack") -> bytes:
    """Return the ``.tflite`` bytes for ``graph`` (one subgraph, schema v3)."""
    model = fb.ModelT()
    model.version = 3
    model.description = description
    model.buffers = [fb.BufferT()]  # buffer 0: the empty buffer by convention
    index: dict[str, int] = {}
    tensors = []
    stored: dict[bytes, int] = {}      # one buffer per distinct content: tensors of other shapes share it
    for name, t in graph.tensors.items():
        ft = fb.TensorT()
        ft.name = name
        ft.shape = np.asarray(t.shape, dtype=np.int32)
        ft.type = tflite_type(t.dtype)
        ft.buffer = 0
        if t.data is not None:
            payload = np.ascontiguousarray(t.data, dtype=t.dtype.newbyteorder("<")).tobytes()
            key = hashlib.sha256(payload).digest() + len(payload).to_bytes(8, "little")
            if key not in stored:
                buf = _AlignedBuffer()
                buf.data = payload
                stored[key] = len(model.buffers)
                model.buffers.append(buf)
            ft.buffer = stored[key]
        ft.quantization = t.quant
        index[name] = len(tensors)
        tensors.append(ft)

    codes: dict[str, int] = {}
    ops = []
    for op in graph.ops:
        if op.opcode not in codes:
            code = fb.OperatorCodeT()
            code.builtinCode = getattr(fb.BuiltinOperator, op.opcode)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            code.version = MIN_VERSION.get(op.opcode, 1)
            codes[op.opcode] = len(codes)
            model.operatorCodes = (model.operatorCodes or []) + [code]
        fop = fb.OperatorT()
        fop.opcodeIndex = codes[op.opcode]
        fop.inputs = np.asarray([-1 if n is None else index[n] for n in op.inputs], dtype=np.int32)
        fop.outputs = np.asarray([index[n] for n in op.outputs], dtype=np.int32)
        if op.options is not None:
            fop.builtinOptionsType = _options_type(op.options)
            fop.builtinOptions = op.options
        ops.append(fop)

    sub = fb.SubGraphT()
    sub.name = "main"
    sub.tensors = tensors
    sub.operators = ops
    sub.inputs = np.asarray([index[n] for n in graph.inputs], dtype=np.int32)
    sub.outputs = np.asarray([index[n] for n in graph.outputs], dtype=np.int32)
    model.subgraphs = [sub]

    size_hint = sum(t.data.nbytes for t in graph.tensors.values() if t.data is not None)
    builder = flatbuffers.Builder(1024 + 2 * size_hint)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
