"""AdaRound-style rounding: int8 weights fitted on the calibration inputs beat nearest rounding."""
from __future__ import annotations

import numpy as np

from edgepack.model.ort import reference_outputs
from edgepack.transforms import apply
from edgepack_runtime.compare import snr_db

from .models import positive_input_conv, samples
from .test_numerics import ONLY, _info, _int8_weights, _max_rel


def test_adaround_lowers_the_int8_weight_error(tmp_path):
    model = positive_input_conv(tmp_path)
    calib, held = samples(model, 16, seed=1, mean=3.0), samples(model, 8, seed=2, mean=3.0)
    out, record = apply(model, calib, ONLY["adaround"])
    info = _info(record, "adaround")
    assert info["layers"] == 2 and info["median_error_ratio"] > 1.2
    assert _max_rel(reference_outputs(_int8_weights(out), held), reference_outputs(out, held)) < 1e-5  # on grid
    ref = reference_outputs(model, held)
    snr = {}
    for label, m in (("nearest", model), ("fitted", out)):
        got = reference_outputs(_int8_weights(m), held)
        snr[label] = snr_db(np.stack([g["y"] for g in got]), np.stack([r["y"] for r in ref]))
    assert snr["fitted"] > snr["nearest"] + 1.0, snr
