"""The cell equations of ONNX LSTM, GRU and RNN (opset 7+ semantics) for one direction and one step, written
with ``Emit`` (``rnn_emit.py``). Gate orders are ONNX's: LSTM i, o, f, c; GRU z, r, h. A state of ``None``
is zero (no initial state given): its products vanish at step 0.
"""
from __future__ import annotations

from edgepack.model.rnn_emit import Emit


def initial_states(spec, emit: Emit) -> list[tuple]:
    """Per direction: (h,) or (h, c) for LSTM, as [batch, hidden] names or None (zero)."""
    nd, name = len(spec.directions), spec.node.name
    h = emit.unstack(spec.h0, nd, spec.layout, f"{name}/h0") if spec.h0 else [None] * nd
    if spec.node.op_type != "LSTM":
        return [(x,) for x in h]
    c = emit.unstack(spec.c0, nd, spec.layout, f"{name}/c0") if spec.c0 else [None] * nd
    return list(zip(h, c))


def _bias(spec, d: int):
    """(input-side bias Wb, recurrent bias Rb) of direction ``d``, or (None, None) without B."""
    if spec.B is None:
        return None, None
    half = spec.B.shape[1] // 2
    return spec.B[d, :half], spec.B[d, half:]


def lstm_weights(spec, emit: Emit, d: int, prefix: str) -> dict:
    wb, rb = _bias(spec, d)
    w = {"W": emit.const(f"{prefix}/W", spec.W[d]), "R": emit.const(f"{prefix}/R", spec.R[d]),
         "b": None if wb is None else emit.const(f"{prefix}/B", wb + rb)}
    if spec.P is not None:
        H = spec.hidden
        for k, part in zip(("Pi", "Po", "Pf"), range(3)):
            w[k] = emit.const(f"{prefix}/{k}", spec.P[d, part * H:(part + 1) * H])
    w["acts"] = spec.acts[d]
    if spec.input_forget:
        w["one"] = emit.const(f"{prefix}/one", 1.0)
    return w


def lstm_step(spec, emit: Emit, w: dict, x: str, state: tuple, pre: str) -> tuple:
    H, (h, c), (fa, ga, ha) = spec.hidden, state, w["acts"]
    gates = emit.add(emit.gemm(x, w["W"], w["b"], 4 * H, f"{pre}/input"),
                     emit.gemm(h, w["R"], None, 4 * H, f"{pre}/recurrent"), f"{pre}/gates")
    i, o, f, cand = emit.split(gates, [H] * 4, 1, f"{pre}/split",
                               [f"{pre}/{g}_pre" for g in ("i", "o", "f", "cand")])
    if "Pi" in w and c is not None:
        i = emit.add(i, emit.mul(c, w["Pi"], f"{pre}/peep_i"), f"{pre}/i_peep")
        f = emit.add(f, emit.mul(c, w["Pf"], f"{pre}/peep_f"), f"{pre}/f_peep")
    i, f, cand = emit.act(fa, i, f"{pre}/i"), emit.act(fa, f, f"{pre}/f"), emit.act(ga, cand, f"{pre}/cand")
    if spec.input_forget:                                      # coupled gates: f = 1 - i
        f = emit.sub(w["one"], i, f"{pre}/f_coupled")
    c_new = emit.add(emit.mul(f, c, f"{pre}/keep"), emit.mul(i, cand, f"{pre}/write"), f"{pre}/c")
    if "Po" in w:
        o = emit.add(o, emit.mul(c_new, w["Po"], f"{pre}/peep_o"), f"{pre}/o_peep")
    o = emit.act(fa, o, f"{pre}/o")
    return emit.mul(o, emit.act(ha, c_new, f"{pre}/c_act", clipped=False), f"{pre}/h"), c_new


def gru_weights(spec, emit: Emit, d: int, prefix: str) -> dict:
    H, (wb, rb) = spec.hidden, _bias(spec, d)
    w = {"W": emit.const(f"{prefix}/W", spec.W[d]), "Rzr": emit.const(f"{prefix}/R_zr", spec.R[d, :2 * H]),
         "Rh": emit.const(f"{prefix}/R_h", spec.R[d, 2 * H:]), "bx": None, "Rbh": None, "acts": spec.acts[d]}
    if wb is not None:
        bx = wb.copy()
        bx[:2 * H] += rb[:2 * H]                               # z and r: both biases add up front
        w["bx"], w["Rbh"] = emit.const(f"{prefix}/B", bx), emit.const(f"{prefix}/Rb_h", rb[2 * H:])
    return w


def gru_step(spec, emit: Emit, w: dict, x: str, state: tuple, pre: str) -> tuple:
    H, (h,), (fa, ga) = spec.hidden, state, w["acts"]
    xz, xr, xh = emit.split(emit.gemm(x, w["W"], w["bx"], 3 * H, f"{pre}/input"), [H] * 3, 1, f"{pre}/split",
                            [f"{pre}/{g}_in" for g in ("z", "r", "h")])
    if h is not None:
        hz, hr = emit.split(emit.gemm(h, w["Rzr"], None, 2 * H, f"{pre}/recurrent"), [H, H], 1,
                            f"{pre}/split_r", [f"{pre}/z_rec", f"{pre}/r_rec"])
        xz, xr = emit.add(xz, hz, f"{pre}/z_pre"), emit.add(xr, hr, f"{pre}/r_pre")
    z, r = emit.act(fa, xz, f"{pre}/z"), emit.act(fa, xr, f"{pre}/r")
    if spec.linear_before_reset:
        hh = emit.mul(r, emit.gemm(h, w["Rh"], w["Rbh"], H, f"{pre}/recurrent_h"), f"{pre}/reset")
    else:
        hh = emit.gemm(emit.mul(r, h, f"{pre}/reset"), w["Rh"], w["Rbh"], H, f"{pre}/recurrent_h")
    n = emit.act(ga, emit.add(xh, hh, f"{pre}/n_pre"), f"{pre}/n")
    if h is None:                                              # (1 - z) * n
        return (emit.sub(n, emit.mul(z, n, f"{pre}/zn"), f"{pre}/h"),)
    return (emit.add(n, emit.mul(z, emit.sub(h, n, f"{pre}/h_minus_n"), f"{pre}/zd"), f"{pre}/h"),)


def rnn_weights(spec, emit: Emit, d: int, prefix: str) -> dict:
    wb, rb = _bias(spec, d)
    return {"W": emit.const(f"{prefix}/W", spec.W[d]), "R": emit.const(f"{prefix}/R", spec.R[d]),
            "b": None if wb is None else emit.const(f"{prefix}/B", wb + rb), "acts": spec.acts[d]}


def rnn_step(spec, emit: Emit, w: dict, x: str, state: tuple, pre: str) -> tuple:
    H, (h,) = spec.hidden, state
    pre_act = emit.add(emit.gemm(x, w["W"], w["b"], H, f"{pre}/input"),
                       emit.gemm(h, w["R"], None, H, f"{pre}/recurrent"), f"{pre}/h_pre")
    return (emit.act(w["acts"][0], pre_act, f"{pre}/h"),)


CELLS = {"LSTM": lstm_step, "GRU": gru_step, "RNN": rnn_step}
WEIGHTS = {"LSTM": lstm_weights, "GRU": gru_weights, "RNN": rnn_weights}
