"""QNN-oriented preprocessing: the graph onnxruntime's QNN quantizer and HTP take without tripping.

``prepare(model)`` works on a copy and is idempotent (preparing a prepared model changes nothing), so node
names of its result are stable: they are the names ``quantize(..., overrides=...)`` refers to. In order:

1. static input shapes are required (``DynamicShapeError`` naming the inputs and ``--input-shape``);
2. ``metadata_props`` are dropped (``qnn_preprocess_model`` crashes on them);
3. opset < 13 is upgraded to 13 (per-channel quantization of opset 11/12 writes DequantizeLinear with an
   ``axis`` those opsets do not have);
4. rewrites (``rewrite.py``): Reciprocal -> Div(1, x), Gemm's 2-D bias, Clip's infinite bounds (run again after
   steps 5 and 6, whose MatMul+Add fusion and constant folding can make a Gemm with a ``[1, N]`` bias);
5. onnxruntime's basic optimizations (BatchNormalization into Conv, ...), then ``qnn_preprocess_model``'s
   fusions (Gelu, LpNormalization, SpaceToDepth, LayerNormalization at opset >= 17); it writes nothing when
   none of its fusions fires (dropping its optimizations too), so the optimized model is kept in that case;
6. constant folding and pruning with edgepack's own loader passes (``Constant`` nodes become
   initializers: a Constant feeding Resize's empty ``roi`` breaks the HTP graph), and unique node names;
7. decomposed layer norms and softmaxes become LayerNormalization / Softmax (``model.fuse_norms``, found by
   what they compute; the opset is raised to 17 for LayerNormalization when the converter takes it): per
   tensor, their pieces cancel (``x - mean``, ``E[x^2] - E[x]^2``) or span ranges 8 or 16 bits cannot hold
   (``Exp``); magika's byte classifier at w8a8 goes from cosine 0.00 to 0.94 (worst held-out sample, QDQ
   arithmetic on onnxruntime CPU), at w8a16 from 19 dB to 40 dB SNR.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import onnx
from onnx import version_converter

from ...errors import ModelError
from ...model import fuse_norms
from ...model.graphutil import main_opset
from ...model.loader import name_nodes, simplify
from ...model.shapes import require_static_inputs
from . import rewrite

MIN_OPSET = 13
LAYERNORM_OPSET = 17         # LayerNormalization exists from opset 17: the fusion needs it

log = logging.getLogger("edgepack.qualcomm")


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` ready for QNN QDQ quantization (see the module docstring for the steps)."""
    require_static_inputs(model)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.metadata_props[:]
    m = upgrade_opset(m)
    rewrite.apply(m)
    m = _qnn_fusions(m)
    simplify(m)
    m, fused = fuse_norms.fuse(m)
    if fused:
        log.info("fused %d decomposed layer norm(s) / softmax(es)", len(fused))
    rewrite.apply(m)         # again: the fusions and folding make Gemms with [1, N] biases (magika's Dense layers)
    name_nodes(m)
    unambiguous_tensor_names(m)
    return m


def unambiguous_tensor_names(model: onnx.ModelProto) -> int:
    """Rename, in place, every tensor whose name is another tensor's name plus digits (``T2`` beside ``T``):
    onnxruntime's QDQ quantizer makes names that then collide, and writes a model whose shapes no longer
    infer (basic-pitch: a Conv output ``...conv1d_252`` beside its bias ``...conv1d_25``; the QDQ model then
    fails to load with "All inputs to Concat must have same rank"). Graph inputs and outputs keep their
    names. Returns how many were renamed."""
    g = model.graph
    io = {v.name for v in g.input} | {v.name for v in g.output}
    names = {t.name for t in g.initializer} | {o for n in g.node for o in n.output if o} | io
    renamed = {}
    for name in sorted(names - io):
        stem = name.rstrip("0123456789")
        if stem != name and any(stem + name[len(stem):k] in names for k in range(len(stem), len(name))):
            new, i = f"{name}_e", 0
            while new in names:
                i += 1
                new = f"{name}_e{i}x"
            renamed[name] = new
    if not renamed:
        return 0
    for n in g.node:
        n.input[:] = [renamed.get(x, x) for x in n.input]
        n.output[:] = [renamed.get(x, x) for x in n.output]
    for t in g.initializer:
        t.name = renamed.get(t.name, t.name)
    for v in g.value_info:
        v.name = renamed.get(v.name, v.name)
    return len(renamed)


def upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model at opset >= 13 (``onnx.version_converter``); ModelError naming the opset when it fails."""
    opset = main_opset(model)
    if opset >= MIN_OPSET:
        return model
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:   # the converter raises bare RuntimeErrors and ValueErrors
        raise ModelError(f"the model's opset {opset} could not be upgraded to {MIN_OPSET} for per-channel "
                         f"QDQ quantization: {exc}",
                         hint=f"export the model at opset {MIN_OPSET} or later") from exc
    log.info("upgraded opset %d -> %d", opset, MIN_OPSET)
    return upgraded


def _qnn_fusions(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxruntime's basic graph optimizations (BatchNormalization folded into Conv, ...), then
    ``qnn_preprocess_model``'s fusions. That function optimizes too, but writes nothing when none of its own
    fusions fires, so its optimizations are lost unless run here first."""
    from onnxruntime.quantization.execution_providers.qnn import qnn_preprocess_model
    from onnxruntime.tools.onnx_model_utils import optimize_model
    with tempfile.TemporaryDirectory(prefix="edgepack-qnn-pre-") as tmp:
        src, opt, out = Path(tmp) / "in.onnx", Path(tmp) / "opt.onnx", Path(tmp) / "pre.onnx"
        onnx.save(model, str(src))       # a path: given a ModelProto it would move its weights to external data
        optimize_model(src, opt)
        with quiet():
            wrote = qnn_preprocess_model(opt, out, fuse_layernorm=main_opset(model) >= LAYERNORM_OPSET)
        fused = onnx.load(str(out if wrote and out.exists() else opt))
    del fused.metadata_props[:]
    return fused


@contextlib.contextmanager
def quiet():
    """Silence the root logger, on which onnxruntime's quantization tools log a warning per node."""
    root = logging.getLogger()
    was = root.disabled
    root.disabled = True
    try:
        yield
    finally:
        root.disabled = was
