"""A calibrated precision judged on a small held-out split says so in the build's warnings (the gate, the
transforms' auto choices and the mixed-precision search follow one or two inputs at that count)."""
from __future__ import annotations

import numpy as np

from edgepack.build import FEW_HOLDOUT, build
from edgepack.targets.base import QuantOptions
from tests.transforms.models import spread_depthwise


def _build(tmp_path, n: int, holdout: float, precision: str):
    model = spread_depthwise(tmp_path)
    import onnx
    src = tmp_path / "m.onnx"
    onnx.save(model, str(src))
    rng = np.random.default_rng(0)
    npz = tmp_path / f"cal{n}.npz"
    np.savez(npz, x=rng.standard_normal((n, 1, 8, 12, 12)).astype(np.float32))
    res = build(str(src), calibration=npz, holdout=holdout, precision=precision, out=tmp_path / f"{n}.edgepack",
                quant=QuantOptions(mixed_precision=False, transforms={"cle": "off", "bias_correction": "off",
                                                                      "sum_round": "off"}),
                allow_mismatch=True)
    return res.manifest["build"]["warnings"], res.manifest["calibration"]["counts"]["holdout"]


def test_a_small_holdout_is_named_for_a_calibrated_precision(tmp_path):
    warnings, held = _build(tmp_path, 30, 0.2, "int8")
    assert held == 6
    (warning,) = [w for w in warnings if "held-out samples judge" in w]
    assert warning.startswith("only 6 held-out samples judge int8:") and f"at least {FEW_HOLDOUT}" in warning


def test_enough_held_out_samples_or_a_float_precision_say_nothing(tmp_path):
    warnings, held = _build(tmp_path, 40, 0.4, "int8")
    assert held == FEW_HOLDOUT and not [w for w in warnings if "held-out samples judge" in w]
    warnings, held = _build(tmp_path, 30, 0.2, "fp32")
    assert held == 6 and not [w for w in warnings if "held-out samples judge" in w]
