"""Output kinds read from reference values, and the task figures (``edgepack_runtime.kinds``): which kind each
family of outputs gets, bounds and symmetry of the figures, exact values on constructed cases."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgepack_runtime.compare import compare_output, summarize
from edgepack_runtime.kinds import iou, map_figures, output_kind, probability_figures, task_figures
from edgepack_runtime.precisions import Gate
from edgepack_runtime.regions import boxes, label, region_agreement

seeds = st.integers(0, 2 ** 32 - 1)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 30), st.integers(2, 300), st.floats(0.1, 20))
def test_softmax_rows_are_probabilities(seed, samples, rows, classes, spread):
    logits = np.random.default_rng(seed).normal(0, spread, (samples, 1, rows, classes))
    p = softmax(logits).astype(np.float32)
    assert output_kind(p) == "probabilities"
    assert output_kind(p[:, :, 0]) == "probabilities"            # [S, 1, K] classifier scores
    assert output_kind(logits) == "values"                         # the logits themselves are not


@settings(max_examples=30, deadline=None)
@given(seeds, st.integers(2, 16), st.integers(8, 24), st.integers(8, 24))
def test_softmax_over_channels_is_probabilities_and_sigmoid_maps_are_maps(seed, channels, h, w):
    rng = np.random.default_rng(seed)
    assert output_kind(softmax(rng.normal(0, 3, (2, 1, channels, h, w)), axis=2)) == "probabilities"
    text = sigmoid(rng.normal(-4, 4, (2, 1, 1, h, w)))
    text[:, 0, 0, 0, 0] = 0.9                                      # something is "on"
    assert output_kind(text.astype(np.float32)) == "probability_map"


@settings(max_examples=60, deadline=None)
@given(seeds, st.sampled_from([(1, 96), (1, 384), (1, 64, 384), (1, 1, 97, 32), (1, 16, 96), (1, 512)]))
def test_embeddings_and_audio_features_are_values(seed, shape):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (3, *shape))
    unit = x / np.linalg.norm(x, axis=-1, keepdims=True)          # L2-normalised sentence embeddings
    log_mel = np.log(np.abs(x) * 1e-3 + 1e-6)                       # log energies: negative
    relu_1d = np.clip(x, 0, None) / (np.abs(x).max() + 1)          # a [0, 1) embedding with one long axis
    for v in (x, unit, log_mel):
        assert output_kind(v.astype(np.float32)) == "values"
    if sum(d >= 8 for d in shape) < 2:
        assert output_kind(relu_1d) == "values"
    assert output_kind(np.zeros((3, *shape), np.int64)) == "values"


def test_dim_maps_and_constant_outputs_are_values():
    assert output_kind(np.full((2, 1, 1, 32, 32), 0.2, np.float32)) == "values"       # nothing above 0.5
    assert output_kind(np.full((2, 1, 1), 1.0, np.float32)) == "values"                 # softmax over 1
    assert output_kind(np.array([[np.nan, 0.5]])) == "values"


masks = hnp.arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.floats(0, 1))


@settings(max_examples=100, deadline=None)
@given(masks, st.data(), st.sampled_from([0.3, 0.5]))
def test_iou_is_bounded_symmetric_and_one_on_itself(a, data, t):
    b = data.draw(hnp.arrays(np.float64, a.shape, elements=st.floats(0, 1)))
    v = iou(a, b, t)
    assert 0.0 <= v <= 1.0 and v == iou(b, a, t) and iou(a, a, t) == 1.0


def test_iou_exact_values():
    ref = np.zeros((8, 8))
    ref[0, :4] = 0.9                     # four pixels on
    got = np.zeros((8, 8))
    got[0, 2:6] = 0.6                    # two of them, and two others
    assert iou(got, ref, 0.5) == pytest.approx(2 / 6)
    assert iou(np.zeros((4, 4)), np.zeros((4, 4)), 0.5) == 1.0          # both empty: they agree
    got[0, 2:6] = 0.4                                                    # under 0.5, over 0.3
    assert iou(got, ref, 0.5) == 0.0 and iou(got, ref, 0.3) == pytest.approx(2 / 6)
    f = map_figures(np.stack([got, ref]), np.stack([ref, ref]))
    assert f == {"iou_50": 0.0, "iou_30": pytest.approx(2 / 6), "max_prob_error": pytest.approx(0.9),
                 "region_recall": 1.0, "region_precision": 1.0}       # 4-pixel regions are specks: none to find


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(1, 4), st.integers(1, 12), st.integers(2, 40))
def test_probability_figures_bounds_and_symmetric_parts(seed, samples, rows, classes):
    rng = np.random.default_rng(seed)
    a, b = (softmax(rng.normal(0, 3, (samples, rows, classes))) for _ in range(2))
    f, back = probability_figures(a, b, 0 if rows == 1 else 1), probability_figures(b, a, 0 if rows == 1 else 1)
    for key, v in f.items():
        assert 0.0 <= v <= 1.0, key
    assert f["top1_agreement"] == back["top1_agreement"] and f["max_prob_error"] == back["max_prob_error"]
    same = probability_figures(a, a, 1)
    assert same["top1_agreement"] == 1.0 and same["max_prob_error"] == 0.0


def test_a_recognizer_off_by_one_character_exact_figures():
    """Two samples of 5 positions over 8 characters; the target's sample 1 picks another character at one
    position with probability 0.6 where the reference said 0.1."""
    ref = np.full((2, 5, 8), 0.3 / 7)
    ref[:, :, 0] = 0.7
    ref[1, 2] = [0.6, 0.1] + [0.3 / 6] * 6
    got = ref.copy()
    got[1, 2] = [0.1, 0.6] + [0.3 / 6] * 6
    f = probability_figures(got, ref, 1)
    assert f == {"top1_agreement": pytest.approx(9 / 10), "max_prob_error": pytest.approx(0.5),
                 "top5_agreement": 1.0, "sequence_agreement": 0.5, "text_agreement": 0.5}
    figures = compare_output(list(got[:, None]), list(ref[:, None]))       # [S, 1, T, C] as a recognizer gives
    assert figures["kind"] == "probabilities" and figures["sequence_agreement"] == 0.5
    assert figures["top1_agreement"] == pytest.approx(0.9) and figures["cosine_mean"] > 0.94


def _paths_as_probabilities(paths, classes=6, p=0.9):
    out = np.full((len(paths), len(paths[0]), classes), (1 - p) / (classes - 1))
    for i, path in enumerate(paths):
        out[i, np.arange(len(path)), path] = p
    return out


def test_text_agreement_reads_a_ctc_best_path_as_its_text():
    """Class 0 fills most of the reference's best paths (a CTC blank). A character that starts one position
    later, or a doubled character, is the same text; a character changed, dropped or split by a blank is not."""
    from edgepack_runtime.kinds import ctc_blank, ctc_text
    ref = [[0, 3, 3, 0, 0, 4, 0, 0], [0, 2, 0, 0, 5, 0, 0, 0], [0, 0, 1, 0, 0, 0, 2, 0], [0, 4, 4, 4, 0, 0, 0, 0]]
    got = [[0, 0, 3, 0, 0, 4, 4, 0], [0, 2, 0, 0, 5, 5, 0, 0], [0, 0, 1, 0, 0, 0, 3, 0], [0, 4, 0, 4, 0, 0, 0, 0]]
    assert ctc_text(np.array(ref[0]), 0) == (3, 4) and ctc_text(np.array(got[3]), 0) == (4, 4)
    assert ctc_blank(np.array(ref)) == 0
    f = probability_figures(_paths_as_probabilities(got), _paths_as_probabilities(ref), 1)
    assert f["sequence_agreement"] == 0.0                  # no best path is the same position by position
    assert f["text_agreement"] == 0.5                      # samples 0 and 1 read the same; 2 and 3 do not
    busy = [[1, 2, 3, 4, 5, 1], [2, 3, 4, 5, 1, 2]]         # no class fills 30% of the paths: not a CTC output
    assert "text_agreement" not in probability_figures(_paths_as_probabilities(busy),
                                                       _paths_as_probabilities(busy), 1)


def test_summarize_reports_the_worst_task_figures():
    rng = np.random.default_rng(0)
    p = softmax(rng.normal(0, 3, (4, 1, 10))).astype(np.float32)
    m = sigmoid(rng.normal(-2, 4, (4, 1, 1, 16, 16))).astype(np.float32)
    q = p.copy()
    q[0, 0] = np.roll(q[0, 0], 1)
    s = summarize({"cls": compare_output(list(q), list(p)), "map": compare_output(list(m * 0.9), list(m))}, Gate())
    assert s["outputs"]["cls"]["kind"] == "probabilities" and s["outputs"]["map"]["kind"] == "probability_map"
    assert s["min_top1_agreement"] == 0.75 and s["max_prob_error"] == pytest.approx(
        max(float(np.abs(q - p).max()), float(np.abs(m * 0.9 - m).max())))
    assert 0.0 < s["min_iou_50"] < 1.0
    assert task_figures(np.ones((2, 3)), np.ones((2, 3))) == {"kind": "values"}


def test_the_task_parts_of_the_gate_judge_only_outputs_of_their_kind():
    from edgepack_runtime.compare import failures
    gate = Gate(0.9, 1.0, min_iou=0.9, max_prob_error=0.1)
    blurred = {"cosine": 0.99, "rel_error": 0.3, "kind": "probability_map", "iou_50": 0.85, "iou_30": 0.95,
               "max_prob_error": 0.3}
    assert failures(blurred, gate) == ["map IoU at 0.5 0.850 < 0.9", "max probability error 0.3 > 0.1"]
    assert failures({"cosine": 0.99, "rel_error": 0.3, "kind": "values"}, gate) == []
    assert failures(blurred, Gate(0.9, 1.0)) == []                       # no task thresholds: not judged
    moved = dict(blurred, region_recall=1.0, region_precision=0.8)
    assert failures(moved, Gate(0.9, 1.0, min_region=0.9)) == ["region precision 0.800 < 0.9"]
    s = summarize({"m": blurred}, gate)
    assert not s["passed"] and s["min_iou_50"] == 0.85 and s["thresholds"]["min_iou"] == 0.9


def test_quantized_gates_judge_a_probability_map_by_its_regions_not_one_flipped_pixel():
    from edgepack_runtime.compare import failures
    from edgepack_runtime.precisions import gate
    yy, xx = np.mgrid[:64, :64]
    ref = np.zeros((3, 1, 64, 64), np.float32)
    for i, (cy, cx) in enumerate([(20, 20), (40, 30), (30, 44)]):       # a text blob per sample, steep edges
        ref[i, 0] = 1 / (1 + np.exp(-2.0 * (12 - np.hypot(yy - cy, xx - cx))))
    flipped = ref.copy()
    flipped[0, 0, 20, 31] = 1.0 - flipped[0, 0, 20, 31]                 # one edge pixel crosses 0.5
    f = compare_output(list(flipped), list(ref))
    assert f["kind"] == "probability_map" and f["rel_error"] > 0.4 and f["iou_50"] > 0.99
    assert f["cosine_mean"] > 0.99 and f["snr_db"] > 15
    for precision in ("int8", "int16x8", "w8a8", "w8a16"):
        assert failures(f, gate(precision)) == [], precision          # judged by regions: passes
    assert failures(f, gate("fp16")) == [f"relative error {f['rel_error']:.3g} > 0.01"]   # float: by value
    shrunk = ref.copy()
    shrunk[1, 0] = np.clip(ref[1, 0] - 0.35, 0, 1)                     # the blob shrinks: regions change
    f2 = compare_output(list(shrunk), list(ref))
    assert f2["iou_50"] < 0.95
    assert any(w.startswith("map IoU at 0.5") for w in failures(f2, gate("int8")))
    values = dict(f, kind="values")                                     # not a map: its max error still counts
    assert failures(values, gate("int8")) == [f"relative error {f['rel_error']:.3g} > 0.5"]


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(1, 40), st.integers(1, 40), st.floats(0.2, 0.8))
def test_labels_are_scipys_connected_components(seed, h, w, density):
    from scipy import ndimage
    mask = np.random.default_rng(seed).random((h, w)) < density
    ours = label(mask)
    theirs, _ = ndimage.label(mask)                     # 4-connectivity by default
    assert np.array_equal(ours >= 0, theirs > 0)
    pairs = set(zip(ours[mask].tolist(), theirs[mask].tolist()))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})   # the same partition


@settings(max_examples=60, deadline=None)
@given(seeds, st.integers(8, 40), st.integers(8, 40))
def test_region_agreement_bounds_symmetry_and_identity(seed, h, w):
    rng = np.random.default_rng(seed)
    a, b = rng.random((h, w)), rng.random((h, w))
    recall, precision = region_agreement(a, b)
    back = region_agreement(b, a)
    assert 0.0 <= recall <= 1.0 and 0.0 <= precision <= 1.0 and (recall, precision) == (back[1], back[0])
    assert region_agreement(a, a) == (1.0, 1.0)


def test_region_agreement_exact_values():
    ref = np.zeros((40, 60))
    ref[5:10, 5:30] = 0.9            # two text lines
    ref[20:26, 10:50] = 0.8
    got = np.zeros_like(ref)
    got[5:11, 6:30] = 0.7            # the first one's edge moved: still the same box
    assert region_agreement(got, ref) == (0.5, 1.0)          # the second line is missing
    got[21:26, 10:48] = 0.35
    got[30:33, 0:3] = 0.9            # a 9-pixel speck the reference does not have
    assert region_agreement(got, ref) == (1.0, pytest.approx(2 / 3))
    assert iou(got, ref, 0.5) < 0.6                      # pixel IoU calls it a large change
    assert boxes(got > 0.3).tolist() == [[5, 6, 11, 30], [21, 10, 26, 48], [30, 0, 33, 3]]
    assert region_agreement(np.zeros((9, 9)), np.zeros((9, 9))) == (1.0, 1.0)


def test_a_nan_reference_or_a_nan_cosine_fails_the_gate_with_a_reason():
    from edgepack_runtime.compare import compare_output, failures
    from edgepack_runtime.precisions import Gate
    nan = [np.full((1, 4), np.nan, np.float32)] * 2
    f = compare_output(nan, nan)                   # the fp32 model itself computes NaN: nothing passes
    assert f["nan_reference"] and "reference itself is all NaN" in failures(f, Gate())[0]
    part = [np.array([[np.nan, 1.0, 2.0, 3.0]], np.float32)] * 2     # NaN where both have it: still compared
    assert "nan_reference" not in compare_output(part, part)
    ok = compare_output([np.ones((1, 4), np.float32)] * 2, [np.ones((1, 4), np.float32)] * 2)
    assert failures(ok, Gate()) == []
    assert failures({**ok, "cosine": float("nan")}, Gate())[0].startswith("cosine nan")


def test_quantized_gates_judge_a_ctc_recognizer_by_its_text_not_one_moved_boundary():
    from edgepack_runtime.compare import failures
    from edgepack_runtime.precisions import gate
    rng = np.random.default_rng(2)
    ref_paths = np.zeros((8, 40), int)
    for i in range(8):                                   # a few characters per line, blanks between
        for pos in sorted(rng.choice(np.arange(2, 38, 3), size=6, replace=False)):
            ref_paths[i, pos] = rng.integers(1, 6)
    moved = ref_paths.copy()
    k = int(np.flatnonzero(moved[0])[0])
    moved[0, k + 1] = moved[0, k]                         # one character lasts a position longer: same text
    ref, got = _paths_as_probabilities(ref_paths), _paths_as_probabilities(moved)
    f = compare_output(list(got[:, None]), list(ref[:, None]))
    assert f["kind"] == "probabilities" and f["text_agreement"] == 1.0 and f["sequence_agreement"] == 7 / 8
    assert f["rel_error"] > 0.5                           # the moved position's probability, 0.9 off
    for precision in ("int8", "int16x8", "w8a8", "w8a16"):
        assert failures(f, gate(precision)) == [], precision            # judged by the text: passes
    assert any(w.startswith("relative error") for w in failures(f, gate("fp16")))    # float: by value
    changed = ref_paths.copy()
    changed[1, np.flatnonzero(changed[1])[0]] = 5 if changed[1, np.flatnonzero(changed[1])[0]] != 5 else 4
    changed[2, np.flatnonzero(changed[2])[1]] = 0                        # and a character dropped
    f2 = compare_output(list(_paths_as_probabilities(changed)[:, None]), list(ref[:, None]))
    assert f2["text_agreement"] == 0.75
    assert "same text 0.750 < 0.95" in failures(f2, gate("int8"))
