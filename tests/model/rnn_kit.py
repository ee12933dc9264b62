"""Random single-node ONNX LSTM / GRU / RNN models for the decomposition tests (``edgepack.model.rnn``)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def rnn_model(kind: str, steps: int, batch: int, size: int, hidden: int, direction: str = "forward", *,
              bias: bool = True, initial: bool = True, peepholes: bool = False, linear_before_reset: int = 0,
              opset: int = 17, seed: int = 0, outputs=("Y", "Y_h", "Y_c"), layout: int = 0,
              **attrs) -> onnx.ModelProto:
    """One ``kind`` node named 'rnn' with constant weights; inputs x [steps, batch, size] (and h0/c0), batch
    first with ``layout=1`` (opset 14+)."""
    rng = np.random.default_rng(seed)
    nd, g = (2 if direction == "bidirectional" else 1), GATES[kind]
    weights = {"W": 0.5 * rng.standard_normal((nd, g * hidden, size)),
               "R": 0.5 * rng.standard_normal((nd, g * hidden, hidden))}
    ins = ["x", "W", "R", "", "", "", "", ""]
    if bias:
        weights["B"], ins[3] = rng.standard_normal((nd, 2 * g * hidden)), "B"
    lead = (lambda a, b: [b, a]) if layout else (lambda a, b: [a, b])       # layout 1: batch first
    graph_in = [helper.make_tensor_value_info("x", TensorProto.FLOAT, lead(steps, batch) + [size])]
    states = ["h0", "c0"] if kind == "LSTM" else ["h0"]
    if initial:
        for i, name in enumerate(states):
            ins[5 + i] = name
            graph_in.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, lead(nd, batch) + [hidden]))
    if peepholes and kind == "LSTM":
        weights["P"], ins[7] = rng.standard_normal((nd, 3 * hidden)), "P"
    while ins[-1] == "":
        ins.pop()
    outs = [o for o in outputs if kind == "LSTM" or o != "Y_c"]
    if kind == "GRU":
        attrs["linear_before_reset"] = linear_before_reset
    if layout:
        attrs["layout"] = layout
    node = helper.make_node(kind, ins, [o if o in outs else "" for o in ("Y", "Y_h", "Y_c")[:3 if kind == "LSTM"
                                                                                          else 2]],
                            name="rnn", hidden_size=hidden, direction=direction, **attrs)
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    y = [batch, steps, nd, hidden] if layout else [steps, nd, batch, hidden]
    shapes = {"Y": y, "Y_h": lead(nd, batch) + [hidden], "Y_c": lead(nd, batch) + [hidden]}
    graph = helper.make_graph([node], "g", graph_in, [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o])
                                                       for o in outs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def feeds_for(model: onnx.ModelProto, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in model.graph.input}
