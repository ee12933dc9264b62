"""Graph rewrites around pitfalls of onnxruntime's QNN quantizer and of HTP (each one measured):

- ``Reciprocal`` -> ``Div(1, x)``: HTP's quantized Reciprocal is wrong once its output range passes a few
  units (inputs in [0.05, 0.2]: about 0.2x the right value), while Div(1, x) with the same ranges is right.
- ``Gemm`` with a bias of rank != 1 (``[1, N]``, a scalar, ``[M, N]``) crashes the quantizer when the weight
  is per-channel int8 (the bias scale check compares arrays): a bias that is a broadcast of N values becomes
  1-D; any other bias moves to an ``Add`` after the Gemm.
- ``Clip`` with an infinite bound given as a constant: the bound is dropped (it clips nothing), so no
  infinite value reaches the quantizer.

Every rewrite keeps node and tensor names (new initializers are named after their node) and works in place.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...model.graphutil import unique_name


def apply(model: onnx.ModelProto) -> int:
    """Run every rewrite on ``model`` in place; returns how many nodes changed."""
    return reciprocal_to_div(model) + gemm_bias(model) + clip_infinite_bounds(model)


def reciprocal_to_div(model: onnx.ModelProto) -> int:
    g = model.graph
    dtypes = _dtypes(g)
    changed = 0
    for i, node in enumerate(g.node):
        if node.op_type != "Reciprocal" or node.domain not in ("", "ai.onnx"):
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(dtypes.get(node.input[0], onnx.TensorProto.FLOAT))
        one = unique_name(g, f"{node.name or node.output[0]}_one")
        g.initializer.append(numpy_helper.from_array(np.array(1, dtype), one))
        g.node[i].CopyFrom(helper.make_node("Div", [one, node.input[0]], list(node.output), name=node.name))
        changed += 1
    return changed


def gemm_bias(model: onnx.ModelProto) -> int:
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    changed, out = 0, []
    for node in g.node:
        c = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if node.op_type != "Gemm" or c not in inits or len(inits[c].dims) == 1 or node.input[1] not in inits:
            out.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        b_dims = list(inits[node.input[1]].dims)
        n = b_dims[0] if attrs.get("transB", 0) else b_dims[1]
        bias = numpy_helper.to_array(inits[c]) * attrs.get("beta", 1.0)
        gemm = onnx.NodeProto()
        gemm.CopyFrom(node)
        del gemm.input[2:]
        _drop_attr(gemm, "beta")
        if bias.size == 1 or (bias.size == n and bias.shape[-1] == n):
            flat = unique_name(g, f"{c}_1d")
            g.initializer.append(numpy_helper.from_array(np.broadcast_to(bias.reshape(-1), (n,)).copy(), flat))
            gemm.input.append(flat)
            out.append(gemm)
        else:
            product = unique_name(g, f"{node.output[0]}_product")
            scaled = unique_name(g, f"{c}_scaled")
            g.initializer.append(numpy_helper.from_array(bias.astype(np.float32), scaled))
            gemm.output[0] = product
            out += [gemm, helper.make_node("Add", [product, scaled], [node.output[0]], name=f"{node.name}_bias")]
        changed += 1
    if changed:
        del g.node[:]
        g.node.extend(out)
    return changed


def clip_infinite_bounds(model: onnx.ModelProto) -> int:
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    changed = 0
    for node in g.node:
        if node.op_type != "Clip":
            continue
        for index, sign in ((1, -1), (2, 1)):
            name = node.input[index] if len(node.input) > index else ""
            if name in inits and np.all(numpy_helper.to_array(inits[name]) == sign * np.inf):
                node.input[index] = ""
                changed += 1
        while node.input and not node.input[-1]:
            del node.input[-1]
    return changed


def _dtypes(graph: onnx.GraphProto) -> dict[str, int]:
    found = {v.name: v.type.tensor_type.elem_type for v in list(graph.input) + list(graph.value_info)
             + list(graph.output) if v.type.HasField("tensor_type")}
    found.update({t.name: t.data_type for t in graph.initializer})
    return found


def _drop_attr(node: onnx.NodeProto, name: str) -> None:
    keep = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(keep)
