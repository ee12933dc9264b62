"""An output of one value per sample is judged by the cosine of all samples' values together: the cosine of
one number is its sign (a wake-word score rounded to 0 read as cosine 0, any positive one as 1)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepack_runtime.compare import compare_output, cosine


def test_a_score_rounded_to_zero_is_not_cosine_zero():
    ref = [np.array([[v]], np.float32) for v in (2e-5, 1e-4, 3e-6, 8e-5)]
    got = [np.array([[v]], np.float32) for v in (1.5e-5, 1.05e-4, 0.0, 7.5e-5)]
    f = compare_output(got, ref)
    assert f["cosine_over_samples"] == 1 and f["cosine"] == f["cosine_mean"] > 0.99
    assert abs(f["rel_error"] - 0.05) < 1e-3


def test_a_constant_answer_fails_where_each_sign_agrees():
    ref = [np.array([v]) for v in (0.9, 0.1, 0.5, 0.7)]
    f = compare_output([np.array([0.5])] * 4, ref)
    assert f["cosine"] < 0.95


def test_vectors_and_a_single_sample_keep_the_per_sample_cosine():
    ref = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    got = [np.array([1.0, 0.0]), np.array([1.0, 0.0])]
    f = compare_output(got, ref)
    assert f["cosine"] == 0.0 and f["cosine_mean"] == 0.5 and "cosine_over_samples" not in f
    one = compare_output([np.array([[0.0]])], [np.array([[1e-5]])])
    assert one["cosine"] == 0.0 and "cosine_over_samples" not in one


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=2, max_size=40),
       st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=2, max_size=40))
def test_the_scalar_cosine_is_the_cosine_of_the_columns(a, b):
    n = min(len(a), len(b))
    got, ref = [np.array([[x]], np.float32) for x in a[:n]], [np.array([[x]], np.float32) for x in b[:n]]
    f = compare_output(got, ref)
    assert f["cosine"] == cosine(np.float32(a[:n]), np.float32(b[:n]))
