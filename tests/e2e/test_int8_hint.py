"""A failed int8 gate on a model whose weighted ops are mostly fully-connected names --precision int8-dynamic
in the error (and a convolutional model's does not): the dynamically quantized kernels round each activation
row at run time, which a per-tensor static range cannot."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgepack.build import build
from edgepack.errors import ParityError
from edgepack.targets.base import QuantOptions
from tests.tflite.test_int8 import _outlier_mlp, outlier_cnn


@pytest.mark.parametrize("net,hint", [("mlp", True), ("cnn", False)])
def test_a_matmul_heavy_model_that_misses_int8_is_pointed_at_int8_dynamic(tmp_path, net, hint):
    model = _outlier_mlp(tmp_path / "m.onnx", "row") if net == "mlp" else outlier_cnn(tmp_path / "m.onnx")
    src = tmp_path / "src.onnx"
    onnx.save(model, str(src))
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    npz = tmp_path / "cal.npz"
    np.savez(npz, x=rng.standard_normal([30] + shape).astype(np.float32))
    off = {"norms": "off", "cle": "off", "smooth": "off", "sum_round": "off", "bias_correction": "off"}
    with pytest.raises(ParityError) as err:
        build(str(src), calibration=npz, holdout=0.3, precision="int8", out=tmp_path / "b.edgepack",
              quant=QuantOptions(mixed_precision=False, transforms=off))
    text = str(err.value)
    assert "misses the accuracy gate" in text
    assert ("--precision int8-dynamic" in text) is hint
    if hint:                      # and the advice holds: int8-dynamic passes the same gate on the same data
        res = build(str(src), calibration=npz, holdout=0.3, precision="int8-dynamic", out=tmp_path / "d.edgepack")
        assert res.manifest["targets"][0]["parity"]["passed"]
