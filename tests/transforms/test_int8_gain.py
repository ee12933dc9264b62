"""The transforms judged where they matter: the cpu target's all-int8 model in LiteRT on held-out inputs
(``auto`` keeps a transform only when these figures improve), and the build's ``--transform`` flag."""
from __future__ import annotations

import json

import onnx
from typer.testing import CliRunner

from edgepack.cli.main import app
from edgepack.model.ort import reference_outputs
from edgepack.targets.base import QuantOptions
from edgepack.targets.tflite.quant.pipeline import describe, quantize
from edgepack_runtime.precisions import PRECISIONS

from .models import jax_norm_head, outlier_layernorm, samples, spread_depthwise

OFF = {"norms": "off", "cle": "off", "smooth": "off", "adaround": "off", "sum_round": "off", "bias_correction": "off"}
GATE = PRECISIONS["int8"].gate


def _int8(model, data, transforms):
    calib, held = data[:24], data[24:]
    options = QuantOptions(method="minmax", mixed_precision=False, transforms=transforms)
    result = quantize(model, calib, held, reference_outputs(model, held), GATE, options)
    return result.figures, result


def test_cle_raises_int8_snr_on_spread_depthwise(tmp_path):
    model = spread_depthwise(tmp_path)
    data = samples(model, 32)
    plain, _ = _int8(model, data, OFF)
    cle, _ = _int8(model, data, {**OFF, "cle": "on"})
    assert cle["min_snr_db"] > plain["min_snr_db"] + 6, (plain["min_snr_db"], cle["min_snr_db"])


def test_fused_norms_raise_int8_snr_on_a_jax_style_head(tmp_path):
    """The decomposed layer norm and softmax quantized op by op against the same model with them fused:
    auto keeps the fusion, and the int8 model carries one SOFTMAX and no EXP."""
    model = jax_norm_head(tmp_path, offset=20.0)
    data = samples(model, 32)
    plain, before = _int8(model, data, OFF)
    fused, result = _int8(model, data, {**OFF, "norms": "auto"})
    assert fused["min_snr_db"] > plain["min_snr_db"] + 2, (plain["min_snr_db"], fused["min_snr_db"])    # 21.4 -> 24.1
    record = describe(result, QuantOptions())["transforms"]
    (norms,) = [t for t in record["tried"] if t["name"] == "norms"]
    assert record["kept"] == ["norms"] and norms["info"]["layernorms"] == 1 and norms["info"]["softmaxes"] == 1
    ops = [op.opcode for op in result.model.graph.ops]
    assert ops.count("SOFTMAX") == 1 and "EXP" not in ops and "SQUARED_DIFFERENCE" in ops
    assert len(ops) < len(before.model.graph.ops) - 10


def test_smooth_raises_int8_snr_on_layernorm_outliers(tmp_path):
    model = outlier_layernorm(tmp_path)
    data = samples(model, 32)
    plain, _ = _int8(model, data, OFF)
    smooth, _ = _int8(model, data, {**OFF, "smooth": "on"})
    for name in ("yq", "yk"):          # the matmuls; the residual output "res" keeps its outliers
        before, after = plain["outputs"][name]["snr_db"], smooth["outputs"][name]["snr_db"]
        assert after > before + 3, (name, before, after)


def test_auto_keeps_only_what_helps(tmp_path):
    spread = spread_depthwise(tmp_path)
    _, result = _int8(spread, samples(spread, 32), {**OFF, "cle": "auto"})
    record = describe(result, QuantOptions())["transforms"]
    (cle,) = [t for t in record["tried"] if t["name"] == "cle"]
    assert record["kept"] == ["cle"] and cle["figures"]["min_snr_db"] > record["baseline"]["min_snr_db"]
    # already even channels: equalizing finds the pairs but gains nothing, so auto leaves the model alone
    even = spread_depthwise(tmp_path, spread=(1.0, 1.0))
    _, result = _int8(even, samples(even, 32), {**OFF, "cle": "auto"})
    (cle,) = [t for t in result.transforms["tried"] if t["name"] == "cle"]
    assert cle["info"]["pairs"] == 2 and not cle["kept"] and result.transforms["kept"] == []
    assert cle["why"] == "held-out figures not better"


def test_build_flag(tmp_path):
    model = spread_depthwise(tmp_path)
    onnx.save(model, str(tmp_path / "m.onnx"))
    res = CliRunner().invoke(app, ["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.edgepack"),
                                   "--precision", "int8", "--no-mixed-precision", "--transform", "all=off",
                                   "--transform", "cle=on", "--allow-mismatch", "--json"])
    assert res.exit_code == 0, res.output
    (target,) = json.loads(res.stdout)["manifest"]["targets"]
    record = target["quantization"]["transforms"]
    assert record["kept"] == ["cle"] and [t["mode"] for t in record["tried"]] == ["off", "on", "off", "off", "off", "off"]
    bad = CliRunner().invoke(app, ["build", str(tmp_path / "m.onnx"), "--transform", "cle=sometimes"])
    assert bad.exit_code != 0 and "NAME=MODE" in bad.output


def test_a_transform_fitted_to_int8_weights_is_checked_again_once_layers_go_float(tmp_path):
    """bias_correction (like adaround and sum_round) fits the float model to its int8 weights' rounding; a
    layer mixed precision makes float computes with float weights, and the fitted bias is then wrong there
    (PP-OCRv4 det: with it, 121 float layers did not reach the gate; without it, 13 did). When the search
    misses the gate, the pipeline runs it again without such transforms and keeps the better of the two by
    the held-out figures, saying so in the record."""
    from dataclasses import replace

    from edgepack.mixed import _score
    from edgepack.targets.tflite.quant.pipeline import _without_fitted
    model = spread_depthwise(tmp_path)
    data = samples(model, 32)
    calib, held = data[:24], data[24:]
    ref = reference_outputs(model, held)
    gate = replace(GATE, min_snr_db=40.0)            # out of all-int8 reach: mixed precision makes layers float
    options = QuantOptions(method="minmax", transforms={**OFF, "bias_correction": "on"})
    fitted = quantize(model, calib, held, ref, gate, options)
    assert fitted.transforms["kept"] == ["bias_correction"] and fitted.float_layers
    assert not fitted.figures["passed"]                                 # when the pipeline looks again
    chosen = _without_fitted(fitted, ["bias_correction"], model, calib, held, ref, gate, options, None,
                             lambda s: None, "int8")
    check = chosen.transforms["float_layers_check"]
    assert check["fitted"] == ["bias_correction"] and set(check) >= {"with", "without", "dropped"}
    assert check["with"]["min_snr_db"] == fitted.figures["min_snr_db"]
    won, lost = (check["without"], check["with"]) if check["dropped"] else (check["with"], check["without"])
    assert chosen.figures["min_snr_db"] == won["min_snr_db"] and _score(chosen.figures)[0] == won["passed"]
    assert (won["passed"], won["min_snr_db"]) >= (lost["passed"], lost["min_snr_db"]) or \
        won["passed"] == lost["passed"]                                    # a pass is never traded away
    assert ("bias_correction" in chosen.transforms["kept"]) != check["dropped"]
