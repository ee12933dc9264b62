"""Folders of .npy files: per input, per sample, and one subfolder per input."""
from __future__ import annotations

import numpy as np
import pytest

from edgepack.calibration import CalibrationError, load_calibration

from .kit import add_model, conv_model, ids, numbered, unary_model, write_image


def _save_samples(folder, arrays, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    for i, arr in enumerate(arrays):
        np.save(folder / (names[i] if names else f"s{i}.npy"), arr)
    return folder


def test_per_input_files(tmp_path):
    np.save(tmp_path / "a.npy", numbered(10, (2, 3)))
    np.save(tmp_path / "b.npy", 10 * numbered(10, (2, 3)))
    cs = load_calibration(tmp_path, add_model())
    assert (cs.kind, cs.npy_layout, len(cs.calib), len(cs.holdout)) == ("npy-folder", "per-input", 8, 2)
    assert sorted(ids(cs.all, "a")) == list(range(10))
    assert all(s["b"][1, 2] == 10 * s["a"][1, 2] for s in cs.all)
    assert cs.describe()["npy_layout"] == "per-input"


def test_per_input_files_missing_an_input(tmp_path):
    np.save(tmp_path / "a.npy", numbered(10, (2, 3)))
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, add_model())
    assert "unknown input name(s) [], missing input(s) ['b']" in err.value.message
    assert "'a' [2, 3] float32, 'b' [2, 3] float32" in err.value.hint


def test_per_sample_files_sort_naturally(tmp_path):
    names = [f"img{i}.npy" for i in range(12)]  # img2 must come before img10
    _save_samples(tmp_path, numbered(12, (1, 3, 8, 8)), names)
    cs = load_calibration(tmp_path, conv_model(), holdout=0)
    assert cs.npy_layout == "per-sample"
    assert ids(cs.calib, "x") == list(range(12)) and ids(cs.holdout, "x") == list(range(12))
    assert len(cs.all) == 12


def test_per_sample_files_accept_a_leading_batch_of_one(tmp_path):
    _save_samples(tmp_path, numbered(4, (1, 2, 3)))
    cs = load_calibration(tmp_path, unary_model((2, 3)))
    assert [s["x"].shape for s in cs.all] == [(2, 3)] * 4


def test_per_sample_file_with_wrong_shape_is_named(tmp_path):
    _save_samples(tmp_path, numbered(3, (2, 2, 3)))
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, unary_model((2, 3)))
    assert f"calibration file {tmp_path / 's0.npy'} has shape [2, 2, 3]" in err.value.message
    assert "expects one sample of shape [2, 3] or [1, 2, 3]" in err.value.message
    assert "'x.npy'" in err.value.hint


def test_per_sample_leading_one_is_not_dropped_when_input_starts_with_one(tmp_path):
    _save_samples(tmp_path, numbered(3, (3, 8, 8)))
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, conv_model())
    assert "has shape [3, 8, 8], input 'x' expects one sample of shape [1, 3, 8, 8]" in err.value.message


def test_per_sample_files_need_a_single_input(tmp_path):
    _save_samples(tmp_path, numbered(3, (2, 3)))
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, add_model())
    assert ".npy files ['s0.npy', 's1.npy', 's2.npy'] are not named after model inputs" in err.value.message
    assert "this one has 2" in err.value.message and "'a' [2, 3] float32" in err.value.hint


def test_per_sample_files_must_share_a_dtype(tmp_path):
    _save_samples(tmp_path, [np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float64)])
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, unary_model((2, 3)))
    assert "s1.npy is float64 but s0.npy is float32" in err.value.message


def test_per_sample_nan_names_the_files(tmp_path):
    arrays = numbered(10, (2, 3))
    arrays[4, 0, 0] = np.nan
    _save_samples(tmp_path, arrays)
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, unary_model((2, 3)))
    assert "input 'x' contains NaN or Inf in 1 of 10 sample(s): s4.npy" in err.value.message


def test_per_sample_int64_input(tmp_path):
    _save_samples(tmp_path, numbered(4, (1, 5), np.int64))
    cs = load_calibration(tmp_path, unary_model((1, 5), elem=7, name="ids"))
    assert sorted(ids(cs.all, "ids")) == [0, 1, 2, 3] and cs.all[0]["ids"].dtype == np.int64


def test_subfolders_pair_samples_by_file_name(tmp_path):
    _save_samples(tmp_path / "a", numbered(10, (2, 3)))
    _save_samples(tmp_path / "b", 10 * numbered(10, (2, 3)))
    cs = load_calibration(tmp_path, add_model(), seed=3)
    assert (cs.npy_layout, len(cs.calib), len(cs.holdout)) == ("subfolders", 8, 2)
    assert all(s["b"][0, 0] == 10 * s["a"][0, 0] for s in cs.all)


def test_subfolders_disagreeing_on_counts(tmp_path):
    _save_samples(tmp_path / "a", numbered(3, (2, 3)))
    _save_samples(tmp_path / "b", numbered(2, (2, 3)))
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, add_model())
    assert "inputs disagree on the number of samples ('a': 3, 'b': 2)" in err.value.message


def test_subfolders_with_different_file_names(tmp_path):
    _save_samples(tmp_path / "a", numbered(2, (2, 3)), ["0.npy", "1.npy"])
    _save_samples(tmp_path / "b", numbered(2, (2, 3)), ["0.npy", "2.npy"])
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, add_model())
    assert "subfolders 'a' and 'b' hold different file names (e.g. ['1.npy', '2.npy'])" in err.value.message


def test_subfolder_not_named_after_an_input(tmp_path):
    _save_samples(tmp_path / "a", numbered(2, (2, 3)))
    _save_samples(tmp_path / "z", numbered(2, (2, 3)))
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, add_model())
    assert "unknown input name(s) ['z'], missing input(s) ['b']" in err.value.message


def test_subfolder_of_images_is_rejected(tmp_path):
    _save_samples(tmp_path / "a", numbered(2, (2, 3)))
    (tmp_path / "b").mkdir()
    write_image(tmp_path / "b" / "0.png", np.zeros((2, 3, 3)))
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, add_model())
    assert f"calibration subfolder {tmp_path / 'b'} holds images, not .npy files" == err.value.message


def test_empty_folder(tmp_path):
    (tmp_path / ".DS_Store").write_bytes(b"hidden files are ignored")
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, conv_model())
    assert err.value.message == f"no .npy or image files in {tmp_path}"
    assert "one subfolder per input" in err.value.hint


def test_mixed_and_unknown_content(tmp_path):
    np.save(tmp_path / "x.npy", numbered(3, (1, 3, 8, 8)))
    write_image(tmp_path / "cat.png", np.zeros((8, 8, 3)))
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, conv_model())
    assert "mixes .npy files and images" in err.value.message
    (tmp_path / "labels.txt").write_text("cat")
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, conv_model())
    assert "holds files that are neither .npy nor images" in err.value.message
    assert err.value.message.endswith(": labels.txt")


def test_unreadable_npy_is_named(tmp_path):
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, conv_model())
    assert f"calibration file {tmp_path / 'broken.npy'} is not a readable .npy" in err.value.message
