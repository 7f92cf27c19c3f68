"""The bi-clustering simulation (Wei et al. setting) as a planted piece."""

from __future__ import annotations

import numpy as np
import pytest

from neurodag.simulate.switching import alternating_states, switching_population


def test_piece_follows_the_planted_piece_contract():
    piece = switching_population(seed=3)
    assert piece["counts"].dims == ("neuron", "time")
    assert piece["counts"].dtype.kind == "i" and int(piece["counts"].min()) >= 0
    assert piece.attrs["stimulus_name"] == "spontaneous"
    assert piece.attrs["dt_s"] == 0.5
    assert piece.sizes == {"neuron": 30, "time": 500, "cluster": 3, "dim": 2}
    assert len(set(piece["neuron"].values)) == 30
    assert all(str(n).startswith("bicluster_") for n in piece["neuron"].values)
    assert set(piece["region"].values) == {"LP"}
    assert np.bincount(piece["true_cluster"].values).tolist() == [10, 10, 10]
    assert set(np.unique(piece["true_state"].values)) == {0, 1}
    np.testing.assert_allclose(piece["time"].diff("time"), 0.5)


def test_same_seed_same_piece_and_different_seed_differs():
    a, b, c = (switching_population(seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a["counts"], b["counts"])
    assert not np.array_equal(a["counts"], c["counts"])


def test_states_are_dynamically_distinct():
    piece = switching_population(seed=0, n_time=2000)
    step = np.linalg.norm(np.diff(piece["true_latent"].values, axis=1), axis=-1)  # (cluster, T-1)
    moving = piece["true_state"].values[1:] == 1
    assert step[:, moving].mean() > 4 * step[:, ~moving].mean()


def test_counts_are_overdispersed_as_negative_binomial():
    piece = switching_population(seed=0, n_time=3000, dispersion=10.0)
    mean = piece["true_rate"].values * piece.attrs["dt_s"]
    residual = (piece["counts"].values - mean) ** 2 - mean
    # E[(y - m)^2 - m] = m^2 / r for NB(mean m, dispersion r): estimate r from all bins.
    estimate = (mean**2).sum() / residual.sum()
    assert 7 < estimate < 14


def test_region_per_cluster_and_bad_arguments():
    piece = switching_population(seed=0, region=["CA1", "LP", "VISp"])
    for k, name in enumerate(["CA1", "LP", "VISp"]):
        assert set(piece["region"].values[piece["true_cluster"].values == k]) == {name}
    with pytest.raises(ValueError):
        switching_population(region=["CA1"])
    with pytest.raises(ValueError):
        alternating_states(10, (5, 2), np.random.default_rng(0))
