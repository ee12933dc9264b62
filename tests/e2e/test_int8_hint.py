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


def test_the_build_command_says_how_the_float_layers_were_lightened(tmp_path):
    """The token-outlier MLP needs two float layers; its second MatMul then runs the dynamic int8 kernel.
    `edgepack build` says so, and the manifest counts it."""
    import json

    from typer.testing import CliRunner

    from edgepack.cli.main import app
    from edgepack_runtime.bundle import Bundle
    model = _outlier_mlp(tmp_path / "m.onnx", "row")
    src = tmp_path / "src.onnx"
    onnx.save(model, str(src))
    rng = np.random.default_rng(0)
    npz = tmp_path / "cal.npz"
    np.savez(npz, x=rng.standard_normal([36, 1, 16, 32]).astype(np.float32))
    out = tmp_path / "b.edgepack"
    args = ["build", str(src), "--precision", "int8", "--calibration", str(npz), "--holdout", "0.34",
            "--max-float", "0.6", "--output", str(out)]
    for t in ("norms", "cle", "smooth", "sum_round", "bias_correction"):
        args += ["--transform", f"{t}=off"]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    q = Bundle.open(out).manifest["targets"][0]["quantization"]
    assert q["dynamic_ops"] >= 1 and len(q["float_layers"]) == 2
    assert f"float layers lightened: {q['dynamic_ops']} fully-connected ops on the dynamic int8 kernel" in res.output
    assert [t["rung"] for t in q["mixed_precision"]["tried"] if t.get("rung") in ("dynamic", "fp16")] == ["dynamic"]
    json.dumps(q)                                                       # the record is plain JSON
