"""``edgepack debug-quant --target qualcomm``: the QDQ model against its fp32 twin, layer by layer
(``targets/qualcomm/debug.py``); the final outputs on the HTP simulator."""
from __future__ import annotations

import pytest

from edgepack.targets.qualcomm.debug import debug_layers

from .kit import needs_htp
from .test_mixed import job_for, outlier_net


@needs_htp
def test_the_outlier_layer_ranks_first_at_w8a8():
    table = debug_layers(outlier_net(), job_for(outlier_net(), "w8a8"))
    rows = {r["origin"]: r for r in table.layers}
    assert list(rows) == ["conv1", "conv2", "conv3", "conv4"]       # relu1..3 are folded into their convs
    assert [r["tensor"] for r in table.layers] == ["ar", "br", "cr", "y"]
    first = table.ranked[0]
    assert first["origin"] == "conv1" and first["tensor"] == "ar" and first["bits"] == 8
    assert first["quant_snr_db"] < 6.0                                # 15 of 16 channels below one step
    assert all(r["quant_snr_db"] > 30.0 for r in table.ranked[1:])
    assert rows["conv2"]["added_db"] > 30.0 and rows["conv2"]["snr_db"] < 3.0   # where the damage shows
    assert all(r["weight_snr_db"] > 35.0 for r in table.layers)      # per-channel int8 weights are fine
    f = table.figures
    assert f["backend"] == "htp" and not f["passed"] and f["samples"] == 6 and f["layers_backend"] == "onnxruntime-cpu"
    assert f["cpu"]["min_snr_db"] == pytest.approx(f["min_snr_db"], abs=1.0)    # CPU emulation tells the same
    # every layer exposed on the simulator: HTP computes what the QDQ arithmetic says (no kernel of its own loses)
    assert all(abs(r["htp_snr_db"] - r["snr_db"]) < 3.0 and r["htp_added_db"] < 3.0 for r in table.layers)


@needs_htp
def test_at_w8a16_the_same_layer_is_fine_and_the_gate_passes():
    table = debug_layers(outlier_net(), job_for(outlier_net(), "w8a16"))
    assert table.figures["passed"] and table.figures["min_snr_db"] > 25.0
    assert all(r["bits"] == 16 for r in table.layers)
    assert {r["origin"]: r for r in table.layers}["conv1"]["quant_snr_db"] > 40.0


@needs_htp
def test_keep_float_leaves_the_named_layer_unquantized():
    table = debug_layers(outlier_net(), job_for(outlier_net(), "w8a8", keep_float=("conv4",)))
    rows = {r["origin"]: r for r in table.layers}
    assert not rows["conv4"]["int8"] and "quant_snr_db" not in rows["conv4"]
    assert "conv4" not in [r["origin"] for r in table.ranked]


@needs_htp
def test_the_cli_table_shows_what_htp_loses_beyond_the_qdq_arithmetic(tmp_path):
    import onnx
    from typer.testing import CliRunner

    from edgepack.cli.main import app
    path = tmp_path / "outlier.onnx"
    onnx.save(outlier_net(), path)
    result = CliRunner().invoke(app, ["debug-quant", str(path), "--target", "qualcomm", "--top", "4"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "lost on HTP dB" in text and "culprit: conv1 (Conv)" in text
