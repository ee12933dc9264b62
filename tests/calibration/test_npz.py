"""`.npz` intake: input name -> [samples, *input shape]."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepack.calibration import CalibrationError, load_calibration, load_npz

from .kit import add_model, conv_model, ids, numbered


def _npz(tmp_path, **arrays):
    path = tmp_path / "calib.npz"
    np.savez(path, **arrays)
    return path


def test_npz_loads_and_splits(tmp_path):
    path = _npz(tmp_path, x=numbered(12, (1, 3, 8, 8)))
    cs = load_calibration(path, conv_model())
    assert (cs.kind, cs.source, cs.preprocess) == ("npz", str(path), None)
    assert (len(cs.calib), len(cs.holdout)) == (10, 2)
    assert sorted(ids(cs.all, "x")) == list(range(12))
    for s in cs.all:
        assert s["x"].shape == (1, 3, 8, 8) and s["x"].dtype == np.float32
    summary = cs.describe()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["counts"] == {"calib": 10, "holdout": 2, "total": 12}
    assert (summary["synthetic"], summary["holdout_fraction"], summary["seed"]) == (False, 0.2, 0)
    assert cs.warnings == []


def test_two_inputs_keep_their_pairing(tmp_path):
    path = _npz(tmp_path, a=numbered(10, (2, 3)), b=10 * numbered(10, (2, 3)))
    cs = load_calibration(path, add_model(), holdout=0.3)
    assert (len(cs.calib), len(cs.holdout)) == (7, 3)
    for s in cs.all:
        assert s["b"][0, 0] == 10 * s["a"][0, 0]


def test_load_npz_keeps_its_old_contract(tmp_path):
    samples = load_npz(_npz(tmp_path, x=numbered(3, (1, 3, 8, 8))), conv_model())
    assert ids(samples, "x") == [0, 1, 2]
    with pytest.raises(CalibrationError, match="does not exist"):
        load_npz(tmp_path / "nope.npz", conv_model())


def test_float64_is_cast_with_a_warning(tmp_path):
    cs = load_calibration(_npz(tmp_path, x=numbered(10, (1, 3, 8, 8), np.float64)), conv_model())
    assert cs.calib[0]["x"].dtype == np.float32
    assert any("'x' is float64, cast to the model's float32" in w for w in cs.warnings)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.int64])
def test_other_dtypes_are_errors(tmp_path, dtype):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_npz(tmp_path, x=numbered(4, (1, 3, 8, 8), dtype)), conv_model())
    assert f"input 'x' is {np.dtype(dtype)}, the model expects float32" in err.value.message
    assert "astype(np.float32)" in err.value.hint


def test_unknown_and_missing_names_list_the_model_inputs(tmp_path):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_npz(tmp_path, a=numbered(4, (2, 3)), z=numbered(4, (2, 3))), add_model())
    assert "unknown input name(s) ['z'], missing input(s) ['b']" in err.value.message
    assert err.value.hint == "the model's inputs are 'a' [2, 3] float32, 'b' [2, 3] float32"


def test_wrong_sample_shape(tmp_path):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_npz(tmp_path, x=numbered(5, (3, 8, 8))), conv_model())
    assert "input 'x' has shape [5, 3, 8, 8] (5 sample(s) of [3, 8, 8])" in err.value.message
    assert "the model expects samples of [1, 3, 8, 8]" in err.value.message
    assert "[samples, *input shape]" in err.value.hint


def test_one_sample_without_sample_axis_gets_a_specific_hint(tmp_path):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_npz(tmp_path, a=np.zeros((2, 3), np.float32), b=np.zeros((2, 3), np.float32)),
                         add_model())
    assert "has shape [2, 3] (2 sample(s) of [3])" in err.value.message
    assert "arr[None]" in err.value.hint


def test_nan_and_inf_name_input_and_samples(tmp_path):
    x = numbered(12, (1, 3, 8, 8))
    x[3, 0, 1, 2, 2] = np.nan
    x[7, 0, 0, 0, 0] = np.inf
    with pytest.raises(CalibrationError) as err:
        load_calibration(_npz(tmp_path, x=x), conv_model())
    assert "input 'x' contains NaN or Inf in 2 of 12 sample(s): sample 3, sample 7" in err.value.message


def test_sample_counts_must_agree(tmp_path):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_npz(tmp_path, a=numbered(4, (2, 3)), b=numbered(3, (2, 3))), add_model())
    assert "inputs disagree on the number of samples ('a': 4, 'b': 3)" in err.value.message


def test_one_sample_is_too_few(tmp_path):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_npz(tmp_path, x=numbered(1, (1, 3, 8, 8))), conv_model())
    assert "holds 1 sample(s); at least 2 are needed (one to calibrate, one held out" in err.value.message


def test_fewer_than_ten_samples_warn(tmp_path):
    cs = load_calibration(_npz(tmp_path, x=numbered(5, (1, 3, 8, 8))), conv_model())
    assert (len(cs.calib), len(cs.holdout)) == (4, 1)
    assert any(w.startswith("only 5 calibration samples: int8 ranges may be unreliable") for w in cs.warnings)


def test_missing_unreadable_and_wrong_kind_of_file(tmp_path):
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path / "missing.npz", conv_model())
    assert f"calibration data {tmp_path / 'missing.npz'} does not exist" == err.value.message
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CalibrationError, match=r"bad\.npz is not a readable \.npz"):
        load_calibration(bad, conv_model())
    single = tmp_path / "x.npy"
    np.save(single, numbered(4, (1, 3, 8, 8)))
    with pytest.raises(CalibrationError) as err:
        load_calibration(single, conv_model())
    assert "x.npy is not an .npz" in err.value.message and "folder" in err.value.hint


def test_preprocess_spec_needs_images(tmp_path):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_npz(tmp_path, x=numbered(4, (1, 3, 8, 8))), conv_model(), preprocess="mean=0.5")
    assert "holds no images" in err.value.message
