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
    assert "itself misses" not in text            # the float model holds on these inputs: int8 is at fault
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


def test_a_gate_the_reference_itself_misses_on_dithered_inputs_is_named_in_the_error(tmp_path):
    """y = sigmoid(10^4 * sum(x)) on inputs that sum to about zero: half an int8 step of input noise flips the
    fp32 model's output (its floor: SNR about 1 dB). The int8 model keeps the inputs' grid and reaches 50 dB
    (the gate failed on one-value cosines before those were judged over the samples), so the gate asks for
    60 dB: a build that misses it while the reference misses it too says so, with the figures; the manifest of
    a build shipped anyway records the floor."""
    from tests.verify.test_floor import _steep
    src = tmp_path / "steep.onnx"
    onnx.save(_steep(1e4), str(src))
    rng = np.random.default_rng(0)
    base = np.array([1, -1, 0.5, -0.5, 0.25, -0.25, 0.75, -0.75], np.float32)
    x = np.stack([rng.permutation(base) + rng.uniform(-2e-4, 2e-4) for _ in range(40)])[:, None, :]
    npz = tmp_path / "cal.npz"
    np.savez(npz, x=x.astype(np.float32))
    kw = dict(calibration=npz, holdout=0.4, precision="int8", quant=QuantOptions(mixed_precision=False),
              gate_overrides=dict(min_snr_db=60.0))
    with pytest.raises(ParityError) as err:
        build(str(src), out=tmp_path / "b.edgepack", **kw)
    text = str(err.value)
    assert "the fp32 model itself misses this gate when its inputs move by half an int8 step" in text
    assert "--cosine-over mean" in text
    res = build(str(src), out=tmp_path / "b.edgepack", allow_mismatch=True, **kw)
    floor = res.manifest["targets"][0]["parity"]["floor"]
    assert floor["passed"] is False and floor["failed"] and floor["min_snr_db"] < 15
    assert floor["input_steps"]["x"] == pytest.approx((x.max() - x.min()) / 255, rel=1e-5)
