"""Calibration data intake: an .npz, a folder of .npy files or images, or synthetic samples.

``load_calibration`` checks the data against the model's inputs (names, shapes, dtypes, NaN/Inf,
sample counts) and splits it into calibration samples and held-out samples used to measure accuracy.
Formats, preprocessing keys and errors are described in docs/calibration.md.
"""
from .checks import CalibrationError
from .dataset import CalibrationSet, load_calibration, split
from .npz import load_npz
from .preprocess import Preprocess

__all__ = ["CalibrationError", "CalibrationSet", "Preprocess", "load_calibration", "load_npz", "split"]
