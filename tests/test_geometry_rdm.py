"""RDMs and noise precision equal rsatoolbox's calc_rdm / prec_from_residuals to 1e-10."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.geometry.rdm import (
    METHODS,
    SHRINKAGE,
    calc_rdm,
    noise_precision,
    residuals,
    square,
    upper,
)

rsatoolbox = pytest.importorskip("rsatoolbox", reason="rsatoolbox is a test-only dependency")


def _data(seed, n_cond=9, n_fold=4, n_channel=15, shuffle=True):
    rng = np.random.default_rng(seed)
    conditions = np.tile(np.arange(n_cond), n_fold)
    folds = np.repeat(np.arange(n_fold), n_cond)
    if shuffle:
        order = rng.permutation(len(conditions))
        conditions, folds = conditions[order], folds[order]
    signal = rng.normal(size=(n_cond, n_channel))
    patterns = signal[conditions] + rng.normal(size=(len(conditions), n_channel))
    return patterns, conditions, folds


@pytest.mark.parametrize("method", SHRINKAGE)
def test_noise_precision_matches_rsatoolbox(method):
    from rsatoolbox.data.noise import prec_from_residuals

    patterns, conditions, _ = _data(1)
    res, dof = residuals(patterns, conditions)
    ours = noise_precision(res, dof, method)
    theirs = prec_from_residuals(res, dof=dof, method=method)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    method=st.sampled_from(METHODS),
    n_cond=st.integers(3, 12),
    n_fold=st.integers(2, 5),
    n_channel=st.integers(3, 25),
    remove_mean=st.booleans(),
)
def test_calc_rdm_matches_rsatoolbox(seed, method, n_cond, n_fold, n_channel, remove_mean):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm as rsa_calc_rdm

    patterns, conditions, folds = _data(seed, n_cond, n_fold, n_channel)
    # condition labels that do not sort like their first appearance
    labels = np.array([f"c{(7 * c) % n_cond:02d}" for c in conditions])
    dataset = Dataset(patterns, obs_descriptors={"stimulus": labels, "fold": folds})
    precision = None
    kwargs = {}
    if method in ("mahalanobis", "crossnobis"):
        res, dof = residuals(patterns, labels)
        precision = noise_precision(res, dof, "shrinkage_diag")
        kwargs["noise"] = precision
    if method == "crossnobis":
        kwargs["cv_descriptor"] = "fold"
    if method != "correlation":
        kwargs["remove_mean"] = remove_mean
    theirs = rsa_calc_rdm(dataset, method=method, descriptor="stimulus", **kwargs)
    ours, order = calc_rdm(
        patterns,
        labels,
        method,
        precision=precision,
        folds=folds,
        remove_mean=remove_mean and method != "correlation",
    )
    assert list(order) == list(theirs.pattern_descriptors["stimulus"])
    np.testing.assert_allclose(upper(ours), theirs.dissimilarities[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("noise", ["none", "singular", "shrinkage"])
def test_crossnobis_unbalanced_cells_match_rsatoolbox(noise):
    """Unequal numbers of observations per (fold, condition) cell, with no precision (identity),
    a singular one (no Cholesky factor: the dense path) and a positive-definite one."""
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm as rsa_calc_rdm

    rng = np.random.default_rng(3)
    n_cond, n_fold, n_channel = 6, 4, 12
    cells = [(f, c) for f in range(n_fold) for c in range(n_cond)]
    repeats = rng.integers(1, 4, len(cells))
    folds = np.repeat([f for f, _ in cells], repeats)
    conditions = np.repeat([c for _, c in cells], repeats)
    order = rng.permutation(len(folds))
    folds, conditions = folds[order], conditions[order]
    patterns = rng.normal(size=(n_cond, n_channel))[conditions] + rng.normal(
        size=(len(folds), n_channel)
    )
    precision = {
        "none": None,
        "singular": (lambda a: a @ a.T)(rng.normal(size=(n_channel, n_channel - 3))),
        "shrinkage": noise_precision(*residuals(patterns, conditions)),
    }[noise]
    dataset = Dataset(patterns, obs_descriptors={"stimulus": conditions, "fold": folds})
    theirs = rsa_calc_rdm(
        dataset, method="crossnobis", descriptor="stimulus", noise=precision, cv_descriptor="fold"
    )
    ours, _ = calc_rdm(patterns, conditions, "crossnobis", precision=precision, folds=folds)
    np.testing.assert_allclose(upper(ours), theirs.dissimilarities[0], rtol=0, atol=1e-10)
    # observations already in (fold, condition) order take the no-copy path: same RDM
    order = np.lexsort((conditions, folds))
    ordered, _ = calc_rdm(
        patterns[order], conditions[order], "crossnobis", precision=precision, folds=folds[order]
    )
    np.testing.assert_allclose(ordered, ours, rtol=0, atol=1e-12)


def test_crossnobis_is_unbiased_where_euclidean_is_not():
    """With no signal, crossnobis distances average ~0; Euclidean ones are pushed up by noise."""
    rng = np.random.default_rng(0)
    conditions = np.tile(np.arange(10), 8)
    folds = np.repeat(np.arange(8), 10)
    patterns = rng.normal(size=(80, 50))
    cross, _ = calc_rdm(patterns, conditions, "crossnobis", folds=folds)
    euclid, _ = calc_rdm(patterns, conditions, "euclidean")
    assert abs(upper(cross).mean()) < 0.05
    assert upper(euclid).mean() > 0.2


def test_square_and_upper_are_inverse():
    vector = np.arange(10.0)
    assert np.array_equal(upper(square(vector)), vector)
    with pytest.raises(ValueError, match="upper triangle"):
        square(np.arange(7.0))


def test_bad_arguments_are_named():
    patterns, conditions, _ = _data(0)
    with pytest.raises(ValueError, match="unknown RDM method"):
        calc_rdm(patterns, conditions, "cityblock")
    with pytest.raises(ValueError, match="needs folds"):
        calc_rdm(patterns, conditions, "crossnobis")
    with pytest.raises(ValueError, match="every fold"):
        calc_rdm(
            patterns[:-1], conditions[:-1], "crossnobis", folds=np.r_[np.zeros(5), np.ones(30)]
        )
