"""Decomposed layer norms and softmaxes fused into LayerNormalization / Softmax before quantization.

Exporters spell a layer norm as a dozen elementwise ops (jax2tf: variance as ``E[x^2] - E[x]^2``; PaddlePaddle
and older PyTorch: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div) and a softmax as ``Exp(x - max) / Sum``.
Quantized per tensor, each of those intermediate tensors gets its own 8-bit grid: ``E[x^2] - E[x]^2``
cancels, and ``Exp``'s output loses the small terms. The single op is lowered by each target its own way
(the cpu target: ``MEAN`` / ``SQUARED_DIFFERENCE`` / ``RSQRT`` with the variance taken around the mean;
``SOFTMAX``, whose int8 kernel has a fixed output grid), and the smoothing transform, which works on
LayerNormalization nodes, then finds them.

The search itself is ``edgepack.model.fuse_norms`` (found by what the nodes compute, checked in onnxruntime);
LayerNormalization needs opset 17, and a model below it is converted when onnx's version converter takes it.
"""
from __future__ import annotations

import onnx

from ..model import fuse_norms
from ..model.infer import infer_shapes


def fuse(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """(model, info): ``model`` edited in place, or a new object when its opset was raised. ``info``:
    ``{"layernorms": n, "softmaxes": n, "nodes_replaced": n}``."""
    out, fused = fuse_norms.fuse(model)
    if fused:
        infer_shapes(out)          # the converters read every new tensor's shape from value_info
    return out, {"layernorms": sum(f["kind"] == "LayerNormalization" for f in fused),
                 "softmaxes": sum(f["kind"] == "Softmax" for f in fused),
                 "nodes_replaced": sum(int(f["nodes"]) for f in fused)}
