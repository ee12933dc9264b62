"""Folders of images: decoding, resizing, channel order, normalization and layout."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepack.calibration import CalibrationError, load_calibration

from .kit import add_model, conv_model, unary_model, write_image

F16 = 10


def _gradient(h=8, w=8) -> np.ndarray:
    """R = 10 * row, G = 10 * column, B = 7."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([10 * rows, 10 * cols, np.full((h, w), 7)], axis=-1)


def _folder(tmp_path, pixels, n=2, suffix=".png"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_image(tmp_path / f"{i}{suffix}", pixels)
    return tmp_path


def test_defaults_scale_to_unit_range_in_nchw(tmp_path):
    cs = load_calibration(_folder(tmp_path, _gradient()), conv_model())
    assert cs.kind == "images" and len(cs.calib) == len(cs.holdout) == 1
    x = cs.calib[0]["x"]
    assert x.shape == (1, 3, 8, 8) and x.dtype == np.float32
    rows, cols = np.mgrid[0:8, 0:8]
    np.testing.assert_array_equal(x[0, 0], (10 * rows / 255).astype(np.float32))
    np.testing.assert_array_equal(x[0, 1], (10 * cols / 255).astype(np.float32))
    np.testing.assert_array_equal(x[0, 2], np.float32(7 / 255))
    assert cs.preprocess == {"size": [8, 8], "layout": "NCHW", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
                             "scale": 255.0, "order": "RGB", "resize": "bilinear"}
    assert json.loads(json.dumps(cs.describe()))["preprocess"]["layout"] == "NCHW"


def test_mean_std_scale_and_bgr_order(tmp_path):
    pixels = np.zeros((8, 8, 3))
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 200, 100, 50
    spec = "mean=50,100,150;std=2,4,5;scale=1;order=BGR"
    cs = load_calibration(_folder(tmp_path, pixels), conv_model(), preprocess=spec)
    x = cs.calib[0]["x"][0]
    # BGR: channel 0 is blue (50), 1 green (100), 2 red (200); then (v - mean) / std per channel
    assert [float(x[c, 3, 4]) for c in range(3)] == [0.0, 0.0, 10.0]
    assert cs.preprocess["order"] == "BGR" and cs.preprocess["mean"] == [50.0, 100.0, 150.0]


def test_imagenet_style_numbers(tmp_path):
    pixels = np.zeros((8, 8, 3))
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 255, 128, 0
    spec = "size=8,8;layout=NCHW;mean=0.485,0.456,0.406;std=0.229,0.224,0.225;scale=255;order=RGB;resize=bilinear"
    x = load_calibration(_folder(tmp_path, pixels), conv_model(), preprocess=spec).calib[0]["x"]
    want = [(1 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0 - 0.406) / 0.225]
    np.testing.assert_allclose(x[0, :, 0, 0], want, rtol=1e-6)


def test_nhwc_layout_is_inferred(tmp_path):
    cs = load_calibration(_folder(tmp_path, _gradient()), unary_model((1, 8, 8, 3)))
    x = cs.calib[0]["x"]
    assert x.shape == (1, 8, 8, 3) and cs.preprocess["layout"] == "NHWC"
    assert np.allclose(x[0, 5, 2] * 255, [50, 20, 7])


def test_grayscale_model_converts_to_l(tmp_path):
    pixels = np.zeros((8, 8, 3))
    pixels[:4] = 60  # gray: R = G = B, so L equals it exactly
    cs = load_calibration(_folder(tmp_path, pixels), conv_model((1, 1, 8, 8)), preprocess="mean=0.5;std=0.5;scale=120")
    x = cs.calib[0]["x"]
    assert x.shape == (1, 1, 8, 8) and cs.preprocess["order"] == "L" and cs.preprocess["mean"] == [0.5]
    assert float(x[0, 0, 0, 0]) == 0.0 and float(x[0, 0, 7, 7]) == -1.0


def test_nearest_resize_keeps_block_values(tmp_path):
    blocks = np.kron(np.arange(64).reshape(8, 8), np.ones((2, 2)))  # 16 x 16, 2x2 blocks
    pixels = np.stack([blocks] * 3, axis=-1)
    x = load_calibration(_folder(tmp_path, pixels), conv_model(), preprocess="resize=nearest;scale=1").calib[0]["x"]
    np.testing.assert_array_equal(x[0, 0], np.arange(64).reshape(8, 8))


def test_bilinear_resize_of_a_flat_image(tmp_path):
    pixels = np.zeros((12, 20, 3))
    pixels[...] = (30, 60, 90)
    x = load_calibration(_folder(tmp_path, pixels), conv_model(), preprocess={"scale": 1}).calib[0]["x"]
    assert x.shape == (1, 3, 8, 8)
    np.testing.assert_allclose(x[0, :, 4, 4], [30, 60, 90])


def test_center_crop_takes_the_middle(tmp_path):
    pixels = _gradient(8, 16)  # 8 high, 16 wide: the shorter side already fits, crop columns 4..11
    x = load_calibration(_folder(tmp_path, pixels), conv_model(),
                         preprocess="resize=center-crop;scale=1").calib[0]["x"]
    np.testing.assert_array_equal(x[0, 1, 0], [10 * c for c in range(4, 12)])


def test_float16_input_gets_float16(tmp_path):
    x = load_calibration(_folder(tmp_path, _gradient()), conv_model(elem=F16)).calib[0]["x"]
    assert x.dtype == np.float16


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".webp", ".jpg", ".jpeg", ".PNG"])
def test_image_formats(tmp_path, suffix):
    cs = load_calibration(_folder(tmp_path, _gradient(), n=3, suffix=suffix), conv_model())
    assert len(cs.all) == 3 and cs.all[0]["x"].shape == (1, 3, 8, 8)


def test_toml_spec_file(tmp_path):
    spec = tmp_path / "pre.toml"
    spec.write_text('size = [8, 8]\nlayout = "NCHW"\nmean = [0.5, 0.5, 0.5]\nstd = [0.5, 0.5, 0.5]\n'
                    'scale = 255\norder = "RGB"\nresize = "nearest"\n')
    images = _folder(tmp_path / "imgs", np.full((8, 8, 3), 255))
    cs = load_calibration(images, conv_model(), preprocess=spec)
    assert cs.preprocess["resize"] == "nearest" and float(cs.calib[0]["x"][0, 0, 0, 0]) == 1.0
    table = tmp_path / "table.toml"
    table.write_text('[preprocess]\nmean = 1.0\n')
    cs = load_calibration(images, conv_model(), preprocess=str(table))
    assert float(cs.calib[0]["x"][0, 0, 0, 0]) == 0.0


def test_unreadable_image_is_named(tmp_path):
    _folder(tmp_path, _gradient())
    (tmp_path / "9.jpg").write_text("not really a jpeg")
    with pytest.raises(CalibrationError) as err:
        load_calibration(tmp_path, conv_model())
    assert err.value.message.startswith(f"cannot read image {tmp_path / '9.jpg'}")


@pytest.mark.parametrize("model, fact", [
    (add_model(), "images given for a model with 2 inputs ('a' [2, 3] float32, 'b' [2, 3] float32)"),
    (unary_model((1, 4), elem=7, name="ids"), "images given for a non-image model: input 'ids' is [1, 4] int64"),
    (unary_model((1, 3, 8, 8), elem=6), "input 'x' is [1, 3, 8, 8] int32"),
    (unary_model((1, 5, 8, 8)), "input 'x' is [1, 5, 8, 8]: neither dim 1 nor dim 3 is 1 or 3 channels"),
    (unary_model((2, 3, 8, 8)), "as NCHW that is batch 2 and 3 channel(s)"),
])
def test_images_for_a_non_image_model(tmp_path, model, fact):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_folder(tmp_path, _gradient()), model)
    assert fact in err.value.message
    assert "one 4-D float input" in err.value.hint


@pytest.mark.parametrize("spec, message, hint", [
    ("mena=0.5", "unknown preprocess key(s) ['mena']", "the keys are size, layout, mean, std, scale, order, resize"),
    ({"colour": "RGB"}, "unknown preprocess key(s) ['colour']", "size, layout"),
    ("layout=NCWH", "preprocess key 'layout' has value 'NCWH'", "accepted values: NCHW, NHWC"),
    ("order=RBG", "preprocess key 'order' has value 'RBG'", "accepted values: RGB, BGR"),
    ("resize=cubic", "preprocess key 'resize' has value 'cubic'", "bilinear, nearest, center-crop"),
    ("mean=0.1,0.2", "preprocess key 'mean' has value '0.1,0.2'", "one number or 3 comma-separated numbers"),
    ("std=a,b,c", "preprocess key 'std' has value 'a,b,c'", "one per channel"),
    ("std=1,0,1", "preprocess key 'std' has a zero: [1.0, 0.0, 1.0]", "non-zero"),
    ("scale=-1", "preprocess key 'scale' must be positive, got -1.0", "255"),
    ("size=224,224", "preprocess size [224, 224] differs from input 'x' size [8, 8]", "size=8,8"),
    ("size=8,8,8", "preprocess key 'size' has value '8,8,8'", "H,W"),
    ("mean=0.5;std", "preprocess spec part 'std' is not key=value", "size=224,224"),
])
def test_bad_preprocess_specs(tmp_path, spec, message, hint):
    with pytest.raises(CalibrationError) as err:
        load_calibration(_folder(tmp_path, _gradient()), conv_model(), preprocess=spec)
    assert message in err.value.message
    assert hint in err.value.hint


def test_bad_preprocess_files(tmp_path):
    images = _folder(tmp_path / "imgs", _gradient())
    with pytest.raises(CalibrationError) as err:
        load_calibration(images, conv_model(), preprocess=tmp_path / "missing.toml")
    assert err.value.message == f"preprocess file {tmp_path / 'missing.toml'} does not exist"
    broken = tmp_path / "broken.toml"
    broken.write_text("mean = [0.5,\n")
    with pytest.raises(CalibrationError, match=r"broken\.toml is not valid TOML"):
        load_calibration(images, conv_model(), preprocess=broken)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('layout = "CHW"\n')
    with pytest.raises(CalibrationError) as err:
        load_calibration(images, conv_model(), preprocess=wrong)
    assert "'layout' has value 'CHW'" in err.value.message
