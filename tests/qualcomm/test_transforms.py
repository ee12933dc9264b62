"""``--transform`` on the qualcomm target: cross-layer equalization judged on the plain QDQ model and kept
when it helps, recorded in the manifest's ``qnn.transforms``; the build verified on the HTP simulator."""
from __future__ import annotations

import onnx

from edgepack.build import build
from edgepack.targets.base import QuantOptions
from tests.transforms.models import spread_depthwise

from .kit import needs_htp

OFF = {"norms": "off", "cle": "off", "smooth": "off", "sum_round": "off", "bias_correction": "off"}


def _build(tmp_path, model, transforms, tag):
    src = tmp_path / f"{tag}.onnx"
    onnx.save(model, str(src))
    result = build(str(src), targets=["qualcomm"], precision="w8a8", out=tmp_path / f"{tag}.edgepack",
                   quant=QuantOptions(mixed_precision=False, transforms=transforms), allow_mismatch=True)
    (entry,) = result.manifest["targets"]
    return entry


@needs_htp
def test_cle_is_kept_on_htp_when_it_helps_and_the_build_says_so(tmp_path):
    model = spread_depthwise(tmp_path, spread=(1e-3, 4.0))
    plain = _build(tmp_path, model, OFF, "plain")
    assert "transforms" not in plain["qnn"]
    cle = _build(tmp_path, model, {**OFF, "cle": "auto"}, "cle")
    record = cle["qnn"]["transforms"]
    assert record["kept"] == ["cle"] and record["judged_with"]["mixed_precision"] is False
    (tried,) = [t for t in record["tried"] if t["name"] == "cle"]
    assert tried["info"]["pairs"] >= 1
    assert tried["figures"]["min_snr_db"] > record["baseline"]["min_snr_db"] + 3.0
    # the simulator agrees with the CPU's verdict: the shipped model is closer to fp32 on HTP too
    assert cle["parity"]["backend"] == "qnn"
    assert cle["parity"]["min_snr_db"] > plain["parity"]["min_snr_db"] + 3.0
