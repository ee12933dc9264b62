"""The calibration / hold-out split, synthetic data, and describe()."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepack.calibration import CalibrationError, load_calibration, split
from edgepack.model import make_inputs

from .kit import conv_model, ids, numbered, unary_model


def _npz(tmp_path, n):
    path = tmp_path / f"x{n}.npz"
    np.savez(path, x=numbered(n, (1, 3, 8, 8)))
    return path


def test_split_is_deterministic_disjoint_and_complete(tmp_path):
    path = _npz(tmp_path, 20)
    first = load_calibration(path, conv_model(), seed=5)
    again = load_calibration(path, conv_model(), seed=5)
    other = load_calibration(path, conv_model(), seed=6)
    held = ids(first.holdout, "x")
    assert held == ids(again.holdout, "x") and ids(first.calib, "x") == ids(again.calib, "x")
    assert held != ids(other.holdout, "x")
    assert len(held) == 4 and not set(held) & set(ids(first.calib, "x"))
    assert sorted(held + ids(first.calib, "x")) == list(range(20))
    assert held == sorted(held)  # both parts keep the source order


@pytest.mark.parametrize("n, fraction, held", [
    (12, 0.2, 2),   # 2.4 -> 2
    (10, 0.25, 3),  # 2.5 rounds half up -> 3
    (2, 0.9, 1),    # 1.8 -> 2, capped at n - 1
    (3, 0.01, 1),   # 0.03 -> at least 1
    (100, 0.9, 90),
])
def test_holdout_counts(n, fraction, held):
    calib, holdout, _ = split(list(range(n)), fraction, seed=0)
    assert (len(calib), len(holdout)) == (n - held, held)


def test_holdout_zero_measures_on_calibration_data(tmp_path):
    cs = load_calibration(_npz(tmp_path, 12), conv_model(), holdout=0)
    assert ids(cs.calib, "x") == ids(cs.holdout, "x") == list(range(12))
    assert len(cs.all) == 12
    summary = cs.describe()
    assert summary["holdout_is_calib"] is True and summary["counts"] == {"calib": 12, "holdout": 12, "total": 12}
    assert any(w.startswith("holdout is 0: accuracy is measured on the calibration samples") for w in cs.warnings)


@pytest.mark.parametrize("fraction", [0.95, -0.1, 1.0, float("nan")])
def test_holdout_out_of_range(tmp_path, fraction):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_npz(tmp_path, 12), conv_model(), holdout=fraction)
    assert f"holdout fraction {fraction} is outside [0, 0.9]" == err.value.message


def test_synthetic_data_is_flagged_loudly():
    model = conv_model()
    cs = load_calibration(None, model, seed=4)
    assert (cs.kind, cs.source, cs.preprocess) == ("synthetic", None, None)
    assert (len(cs.calib), len(cs.holdout)) == (13, 3)  # 16 * 0.2 = 3.2 -> 3
    summary = cs.describe()
    assert summary["synthetic"] is True and summary["kind"] == "synthetic" and summary["seed"] == 4
    assert json.loads(json.dumps(summary)) == summary
    (warning,) = summary["warnings"]
    assert warning.startswith("no calibration data: using 16 synthetic random samples")
    assert "NOT representative of real inputs" in warning and "--calibration" in warning
    expected = make_inputs(model, 16, seed=4)
    got = sorted(cs.all, key=lambda s: float(s["x"].sum()))
    for want, have in zip(sorted(expected, key=lambda s: float(s["x"].sum())), got):
        np.testing.assert_array_equal(want["x"], have["x"])


def test_synthetic_sample_count_and_few_warning():
    cs = load_calibration(None, unary_model((2, 3)), synthetic_samples=4, holdout=0.5)
    assert (len(cs.calib), len(cs.holdout)) == (2, 2)
    assert "using 4 synthetic random samples" in cs.warnings[0]
    assert any(w.startswith("only 4 calibration samples") for w in cs.warnings)
    with pytest.raises(CalibrationError, match="synthetic_samples is 1; at least 2 are needed"):
        load_calibration(None, unary_model((2, 3)), synthetic_samples=1)


def test_preprocess_without_images_or_source():
    with pytest.raises(CalibrationError) as err:
        load_calibration(None, conv_model(), preprocess="mean=0.5")
    assert err.value.message == "a preprocess spec was given without calibration images"


def test_errors_carry_exit_code_3(tmp_path):
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path / "nothing", conv_model())
    assert err.value.exit_code == 3
    assert "folder of images" in err.value.hint and str(err.value).endswith(f"({err.value.hint})")


def test_synthetic_samples_stay_within_their_memory_budget():
    """40 synthetic samples of a 1x3x640x640 input would hold 196 MB; a 64 MB budget gets 16 (the floor)."""
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as h

    from edgepack.calibration import load_calibration
    def model(shape):
        g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [h.make_tensor_value_info("x", TP.FLOAT, shape)],
                         [h.make_tensor_value_info("y", TP.FLOAT, shape)])
        return h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    big = load_calibration(None, model([1, 3, 640, 640]), synthetic_samples=40, synthetic_bytes=64 << 20)
    assert len(big.all) == 16 and big.calib[0]["x"].shape == (1, 3, 640, 640)
    mid = load_calibration(None, model([1, 3, 512, 512]), synthetic_samples=40, synthetic_bytes=64 << 20)
    assert len(mid.all) == (64 << 20) // (3 * 512 * 512 * 4) == 21
    small = load_calibration(None, model([1, 8]), synthetic_samples=40, synthetic_bytes=64 << 20)
    assert len(small.all) == 40
    assert "using 16 synthetic random samples" in big.warnings[0]
