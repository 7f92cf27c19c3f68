"""Participation ratio, linear CKA, parallelism score and CCGP on constructed geometries."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.geometry.population import ccgp, linear_cka, parallelism_score, participation_ratio


@settings(max_examples=20, deadline=None)
@given(dim=st.integers(1, 6), seed=st.integers(0, 1000))
def test_participation_ratio_counts_equal_variance_dimensions(dim, seed):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(20, dim)))[0]  # orthonormal columns
    # a regular simplex-like set: equal variance along each of `dim` directions
    codes = np.vstack([np.eye(dim), -np.eye(dim)])
    patterns = codes @ basis.T
    np.testing.assert_allclose(participation_ratio(patterns), dim, rtol=1e-8)


def test_cka_is_invariant_to_rotation_and_scale_not_to_shuffling():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 10))
    rotation = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    np.testing.assert_allclose(linear_cka(x, 3 * x @ rotation), 1.0)
    assert linear_cka(x, x[rng.permutation(30)]) < 0.6


def _factorised(noise, seed=0, abstract=True):
    """Conditions = 2 (factor) x 4 (context) in 30-D; abstract: the factor adds one fixed vector."""
    rng = np.random.default_rng(seed)
    factor = np.repeat([0, 1], 4)
    context = np.tile(np.arange(4), 2)
    context_vectors = rng.normal(size=(4, 30))
    if abstract:
        direction = rng.normal(size=30)
        means = context_vectors[context] + 2.0 * np.outer(factor, direction)
    else:
        means = context_vectors[context] + 2.0 * factor[:, None] * rng.normal(size=(8, 30))
    trial_condition = np.repeat(np.arange(8), 20)
    trials = means[trial_condition] + noise * rng.normal(size=(160, 30))
    return means, trials, factor, context, trial_condition


def test_parallelism_and_ccgp_are_high_for_abstract_codes_only():
    means, trials, factor, context, cond = _factorised(0.5)
    assert parallelism_score(means, factor, context) > 0.95
    assert ccgp(trials, factor[cond], context[cond]) > 0.9
    means, trials, factor, context, cond = _factorised(0.5, abstract=False)
    assert abs(parallelism_score(means, factor, context)) < 0.4
    assert ccgp(trials, factor[cond], context[cond]) < 0.8
