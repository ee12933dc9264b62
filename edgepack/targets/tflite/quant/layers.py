"""Layer-by-layer quantization debugger: the float and the quantized TFLite graphs side by side.

Both models run in LiteRT with every tensor preserved. The int8 pass keeps tensor names, so each
quantized op's output has a float twin (looking through QUANTIZE / DEQUANTIZE). Per op we report:

* ``snr_db`` / ``cosine``: the quantized model's tensor (dequantized) against its float twin; the error
  accumulated up to this point.
* ``quant_snr_db``: how well the tensor's own int8 (or int16) parameters represent the float twin's values (the
  float values fake-quantized with them), averaged over channels in dB: the error this layer *adds*,
  independent of upstream error. One outlier channel shows up here as a collapse of the other channels.
* ``added_db``: how many dB of SNR were lost between the op's worst input and its output.

``int8`` says the layer is quantized (int8 or, in 16x8 and mixed precision, int16: ``bits``).
``edgepack.verify.layers.rank`` orders the rows (the same table for every target) worst first.
"""
from __future__ import annotations

import numpy as np

from edgepack_runtime.compare import CAP_DB, db

from ..ir import Graph
from .clamps import CLAMPS
from .full_integer import quantize_array
from .ranges import interpreter, model_feeds, run_all_tensors


class _Acc:
    def __init__(self):
        self.ff = self.ee = self.qq = self.fq = 0.0
        self.ch_ff = self.ch_ee = None

    def add(self, f: np.ndarray, q: np.ndarray, fake: np.ndarray | None) -> None:
        f64, q64 = f.astype(np.float64).ravel(), q.astype(np.float64).ravel()
        self.ff += float(f64 @ f64)
        self.qq += float(q64 @ q64)
        self.fq += float(f64 @ q64)
        self.ee += float(np.sum((f64 - q64) ** 2))
        if fake is not None:
            c = f.shape[-1] if f.ndim >= 2 else 1
            f2 = f.astype(np.float64).reshape(-1, c)
            e2 = (f2 - fake.astype(np.float64).reshape(-1, c)) ** 2
            self.ch_ff = (0 if self.ch_ff is None else self.ch_ff) + np.sum(f2 ** 2, axis=0)
            self.ch_ee = (0 if self.ch_ee is None else self.ch_ee) + np.sum(e2, axis=0)

    def figures(self) -> dict:
        cos = 1.0 if self.ff == 0 and self.qq == 0 else (
            self.fq / np.sqrt(self.ff * self.qq) if self.ff > 0 and self.qq > 0 else 0.0)
        out = {"snr_db": db(self.ff, self.ee), "cosine": float(cos)}
        if self.ch_ff is not None:
            live = self.ch_ff > 0
            per = [db(s, n) for s, n in zip(self.ch_ff[live], self.ch_ee[live])]
            out["quant_snr_db"] = float(np.mean(per)) if per else CAP_DB
            out["worst_channel"] = int(np.flatnonzero(live)[int(np.argmin(per))]) if per else None
        return out


def _dequant(value: np.ndarray, detail_q) -> np.ndarray:
    if value.dtype.kind == "f" or detail_q is None:
        return value.astype(np.float32)
    scale = np.asarray(detail_q.scale, np.float32)
    zp = np.asarray(detail_q.zeroPoint, np.float32)
    if scale.size > 1:
        shape = [1] * value.ndim
        shape[detail_q.quantizedDimension] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (value.astype(np.float32) - zp) * scale


def _fake(f: np.ndarray, q, dtype=np.int8) -> np.ndarray:
    scale, zp = float(q.scale[0]), int(q.zeroPoint[0])
    return (quantize_array(f, scale, zp, dtype).astype(np.float32) - zp) * scale


QUANTIZED = (np.dtype(np.int8), np.dtype(np.int16))


def clamped_to(graph: Graph) -> dict[str, tuple[float, float]]:
    """Tensors that only clamps read (RELU-family ops, MINIMUM / MAXIMUM with one constant value), with the
    interval the clamps keep: a value beyond it is clipped by the next op whatever its rounding. The int8
    pass carries such a tensor on the clamp's parameters (it saturates there: hard-sigmoid's ``min(conv, 1)``
    becomes a QUANTIZE to [0, 1]), and judging that against the unclipped float twin counted the saturation
    as error (PP-OCR det's two hard-sigmoid convolutions ranked worst of the model). The debugger compares
    both sides within the interval."""
    users = graph.consumers()
    out = {}
    for name in graph.tensors:
        readers = users.get(name, [])
        if not readers or name in graph.outputs:
            continue
        bounds = [_clamp_of(graph, op, name) for op in readers]
        if any(b is None for b in bounds):
            continue
        lo, hi = min(b[0] for b in bounds), max(b[1] for b in bounds)     # what any reader lets through
        if np.isfinite(lo) or np.isfinite(hi):
            out[name] = (float(lo), float(hi))
    return out


def _clamp_of(graph: Graph, op, name: str) -> tuple[float, float] | None:
    """The interval ``op`` clamps ``name`` to, or None when ``op`` is not a clamp of it."""
    if op.opcode in CLAMPS and op.inputs[0] == name:
        return CLAMPS[op.opcode]
    if op.opcode in ("MINIMUM", "MAXIMUM") and len(op.inputs) == 2 and name in op.inputs:
        other = graph.tensors[op.inputs[1] if op.inputs[0] == name else op.inputs[0]]
        if other.data is None or other.data.size == 0 or np.ptp(other.data) != 0:
            return None
        c = float(np.ravel(other.data)[0])
        return (-np.inf, c) if op.opcode == "MINIMUM" else (c, np.inf)
    return None


def debug_layers(float_graph: Graph, float_data: bytes, quant_graph: Graph, quant_data: bytes, io: dict,
                 samples: list[dict]) -> list[dict]:
    """Per-op figures of the quantized graph against the float one, in graph order."""
    prod = {o: op for op in quant_graph.ops for o in op.outputs}

    def twin(name: str) -> str | None:
        seen = 0
        while name not in float_graph.tensors or float_graph.tensors[name].data is not None:
            op = prod.get(name)
            if op is None or op.opcode not in ("QUANTIZE", "DEQUANTIZE") or seen > 4:
                return None
            name, seen = op.inputs[0], seen + 1
        return name

    rows = [op for op in quant_graph.ops if op.outputs and op.opcode != "DEQUANTIZE"
            and twin(op.outputs[0]) is not None
            and quant_graph.tensors[op.outputs[0]].dtype.kind in "fiu"
            and float_graph.tensors[twin(op.outputs[0])].dtype == np.float32]
    qnames = sorted({op.outputs[0] for op in rows} | {n for op in rows for n in op.inputs if n is not None
                                                       and quant_graph.tensors[n].data is None})
    twins = {n: twin(n) for n in qnames}
    fnames = sorted({tn for tn in twins.values() if tn})
    f_interp, q_interp = interpreter(float_data), interpreter(quant_data)
    acc: dict[str, _Acc] = {n: _Acc() for n in qnames if twins[n]}
    kept = clamped_to(float_graph)
    for feed in model_feeds(samples, io):
        fv = run_all_tensors(f_interp, feed, fnames)
        qv = run_all_tensors(q_interp, feed, qnames)
        for n, a in acc.items():
            tn = twins[n]
            if n not in qv or tn not in fv:
                continue
            t = quant_graph.tensors[n]
            f = fv[tn].astype(np.float32)
            # a factor sunk through this tensor (rewrites.sink_scalar_muls): compare in the source's units
            k = quant_graph.tensors[tn].scale if tn in quant_graph.tensors else 1.0
            q = _dequant(qv[n], t.quant) / np.float32(k)
            fake = (_fake(f * np.float32(k), t.quant, t.dtype) / np.float32(k)
                    if t.dtype in QUANTIZED and t.quant is not None else None)
            if tn in kept:                # only a clamp reads it: what lies beyond the clamp does not count
                f, q = np.clip(f, *kept[tn]), np.clip(q, *kept[tn])
                fake = None if fake is None else np.clip(fake, *kept[tn])
            if q.shape == f.shape:
                a.add(f, q, fake)
    figures = {n: a.figures() for n, a in acc.items() if a.ff > 0 or a.qq > 0}
    def computing(op):
        """The op that computed a row's values: through the RESHAPE / SLICE that read back a blocked
        convolution (``passes.block_thin_convs``; its own tensors have no float twin)."""
        seen = 0
        while op.opcode in ("RESHAPE", "SLICE") and seen < 3:
            up = prod.get(op.inputs[0])
            if up is None or up.origin != op.origin or twin(op.inputs[0]) is not None:
                break
            op, seen = up, seen + 1
        return op

    def source(name, origin):
        """An input as the layer read it: through the PAD / RESHAPE that cut it into blocks."""
        for _ in range(3):
            up = prod.get(name) if name is not None and name not in figures else None
            if up is None or up.origin != origin or up.opcode not in ("RESHAPE", "PAD"):
                break
            name = up.inputs[0]
        return name

    out = []
    for row_op in rows:
        name = row_op.outputs[0]
        if name not in figures:
            continue
        op = computing(row_op)
        ins = [figures[n]["snr_db"] for n in map(lambda n: source(n, op.origin), op.inputs) if n in figures]
        dtype = quant_graph.tensors[name].dtype
        row = {"tensor": twin(name), "op": op.opcode, "origin": op.origin, "int8": dtype in QUANTIZED,
               "bits": 8 * dtype.itemsize if dtype in QUANTIZED else 32, **figures[name]}
        row["added_db"] = max(0.0, (min(ins) if ins else CAP_DB) - row["snr_db"])
        out.append(row)
    return out
