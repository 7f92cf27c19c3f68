"""Comparators equal rsatoolbox's; bootstrap, noise ceiling and identification behave."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from neurodag.geometry.compare import (
    compare,
    evaluate_models,
    identification_accuracy,
    identification_grid,
    whiten,
)
from neurodag.geometry.rdm import square, upper


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("spearman", "spearman"),
        ("kendall_tau_a", "tau-a"),
        ("cosine", "cosine"),
        ("whitened_cosine", "cosine_cov"),
        ("pearson", "corr"),
    ],
)
def test_comparators_match_rsatoolbox(ours, theirs):
    pytest.importorskip("rsatoolbox")
    from rsatoolbox.rdm import RDMs
    from rsatoolbox.rdm import compare as rsa_compare

    rng = np.random.default_rng(4)
    a = rng.normal(size=(3, 66))
    b = rng.normal(size=(2, 66)) + a[:2]
    b[0, :10] = b[0, 10]  # ties
    expected = rsa_compare(RDMs(a), RDMs(b), method=theirs)
    np.testing.assert_allclose(compare(a[:, None], b[None], ours), expected, atol=1e-12)


def test_whitening_inverts_the_distance_covariance():
    n = 7
    pairs = np.array(np.triu_indices(n, 1)).T
    incidence = np.zeros((n, len(pairs)))
    incidence[pairs[:, 0], np.arange(len(pairs))] = 1
    incidence[pairs[:, 1], np.arange(len(pairs))] = 1
    covariance = 2 * np.eye(len(pairs)) + incidence.T @ incidence
    x = np.random.default_rng(0).normal(size=len(pairs))
    np.testing.assert_allclose(covariance @ whiten(x), x, atol=1e-10)


def _subjects(n_subject=6, n_cond=12, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    truth = upper(np.abs(rng.normal(size=(n_cond, 1)) - rng.normal(size=(1, n_cond))))
    other = upper(square(rng.uniform(size=truth.size)))
    data = truth + noise * rng.normal(size=(n_subject, truth.size))
    return data, np.stack([truth, other])


def test_true_model_wins_within_noise_ceiling():
    data, models = _subjects()
    result = evaluate_models(data, models, n_bootstrap=30, seed=1)
    assert result["score"][0] > result["score"][1] + 0.3
    assert result["ceiling_lower"] <= result["ceiling_upper"]
    # the true model sits near or below the upper bound of the ceiling
    assert result["score"][0] <= result["ceiling_upper"] + 0.05
    low, high = np.percentile(result["bootstrap"][:, 0], [2.5, 97.5])
    assert low < result["score"][0] < high
    assert result["bootstrap"].shape == (30, 2)


def test_bootstrap_spread_grows_with_noise():
    quiet = evaluate_models(*_subjects(noise=0.1), n_bootstrap=40, resample="subjects")
    loud = evaluate_models(*_subjects(noise=2.0), n_bootstrap=40, resample="subjects")
    assert loud["bootstrap"][:, 0].std() > quiet["bootstrap"][:, 0].std()
    with pytest.raises(ValueError, match="resample"):
        evaluate_models(*_subjects(), resample="voxels")


def test_identification_from_distinct_classes_and_chance_from_noise():
    rng = np.random.default_rng(2)
    prototypes = rng.normal(size=(3, 45))
    labels = np.repeat(["a", "b", "c"], 4)
    subjects = np.tile(np.arange(4), 3)
    clean = prototypes[np.searchsorted(["a", "b", "c"], labels)] + 0.3 * rng.normal(size=(12, 45))
    assert identification_accuracy(clean, labels, subjects) == 1.0
    noise = rng.normal(size=(12, 45))
    grid = identification_grid(noise, labels, subjects, [0.0, 0.5, 1.0])
    assert np.isnan(grid[1, 0]) and np.isnan(grid[2, 0])  # l > u
    assert np.nanmean(grid) < 0.75


@settings(max_examples=30, deadline=None)
@given(
    x=arrays(float, 20, elements=st.integers(0, 4)), y=arrays(float, 20, elements=st.integers(0, 6))
)
def test_tau_a_equals_the_pair_count_definition_with_ties(x, y):
    pairs = np.sign(x[:, None] - x[None]) * np.sign(y[:, None] - y[None])
    np.testing.assert_allclose(compare(x, y, "kendall_tau_a"), pairs.sum() / (20 * 19), atol=1e-12)


def test_nested_identification_is_not_above_the_grid_maximum():
    from neurodag.geometry.compare import identification_accuracy_nested

    rng = np.random.default_rng(3)
    prototypes = rng.normal(size=(3, 45))
    labels = np.repeat(["a", "b", "c"], 4)
    subjects = np.tile(np.arange(4), 3)
    index = np.searchsorted(["a", "b", "c"], labels)
    grid = [0.0, 0.5, 1.0]
    for noise in (0.3, 3.0):
        vectors = prototypes[index] + noise * rng.normal(size=(12, 45))
        nested = identification_accuracy_nested(vectors, labels, subjects, grid)
        assert nested <= np.nanmax(identification_grid(vectors, labels, subjects, grid)) + 1e-12
        if noise < 1:
            assert nested == 1.0


def test_euclidean_identification_is_scikit_learns_nearest_centroid():
    """method="euclidean" is the paper's own rule: NearestCentroid on the transformed RDMs."""
    neighbors = pytest.importorskip("sklearn.neighbors")
    from neurodag.geometry.transforms import transform

    rng = np.random.default_rng(5)
    prototypes = rng.normal(size=(4, 45))
    labels = np.repeat(["a", "b", "c", "d"], 5)
    subjects = np.tile(np.arange(5), 4)
    vectors = prototypes[np.searchsorted(["a", "b", "c", "d"], labels)] + 2.0 * rng.normal(
        size=(20, 45)
    )
    transformed = transform(vectors, "gt", 0.2, 0.6)
    correct = 0
    for subject in range(5):
        train, test = subjects != subject, subjects == subject
        model = neighbors.NearestCentroid().fit(transformed[train], labels[train])
        correct += int(np.sum(model.predict(transformed[test]) == labels[test]))
    ours = identification_accuracy(vectors, labels, subjects, low=0.2, up=0.6, method="euclidean")
    assert ours == correct / 20
    assert 0.25 < ours < 1.0  # neither trivial nor chance, so the comparison means something
