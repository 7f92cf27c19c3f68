"""The Lorenz trial block (planted piece) honours the piece contract and is seeded."""

from __future__ import annotations

import numpy as np

from neurodag.simulate.lorenz import integrate_lorenz, lorenz_trials, sample_counts


def test_piece_contract():
    piece = lorenz_trials(n_conditions=4, trials_per_condition=3, n_neurons=7, n_time=20, seed=1)
    assert piece["rate"].dims == ("trial", "neuron", "time")
    assert piece["true_latent"].dims == ("trial", "time", "dim")
    assert piece.attrs["stimulus_name"] == "lorenz_trials"
    assert piece.sizes["trial"] == 12 and piece.sizes["neuron"] == 7
    assert len(set(piece["neuron"].values)) == 7
    assert all(str(n).startswith("lorenz_") for n in piece["neuron"].values)
    assert set(piece["region"].values) == {"VISrl"}
    np.testing.assert_allclose(np.diff(piece["time"].values), piece.attrs["dt_s"])
    assert piece["time"].values[0] == piece.attrs["dt_s"] / 2
    assert (piece["rate"].values > 0).all()
    # Trials of a condition share rates and latents; conditions differ.
    cond = piece["condition"].values
    same = np.flatnonzero(cond == cond[0])
    np.testing.assert_array_equal(piece["rate"].values[same[0]], piece["rate"].values[same[1]])
    other = np.flatnonzero(cond != cond[0])[0]
    assert not np.allclose(piece["true_latent"].values[0], piece["true_latent"].values[other])
    # Log rates are exactly the linear readout of the latent (below the cap).
    log_rate = np.log(piece.attrs["base_rate_hz"]) + np.einsum(
        "ktd,dn->knt", piece["true_latent"].values, piece["true_readout"].values
    )
    np.testing.assert_allclose(np.log(piece["rate"].values), np.minimum(log_rate, np.log(200.0)))


def test_seeded():
    a = lorenz_trials(n_conditions=3, n_time=10, seed=5)
    b = lorenz_trials(n_conditions=3, n_time=10, seed=5)
    c = lorenz_trials(n_conditions=3, n_time=10, seed=6)
    np.testing.assert_array_equal(a["rate"].values, b["rate"].values)
    assert not np.allclose(a["rate"].values, c["rate"].values)
    np.testing.assert_array_equal(sample_counts(a, 2).values, sample_counts(b, 2).values)


def test_lorenz_integrator_fixed_point_and_attractor():
    # The fixed points (±sqrt(beta(rho-1)), same, rho-1) do not move.
    q = np.sqrt(8 / 3 * 27)
    fixed = integrate_lorenz(np.array([q, q, 27.0]), 50, 0.01)
    np.testing.assert_allclose(fixed, np.broadcast_to([q, q, 27.0], fixed.shape), atol=1e-9)
    # A generic start stays bounded on the attractor.
    path = integrate_lorenz(np.array([1.0, 1.0, 1.0]), 2000, 0.01)
    assert np.abs(path).max() < 60


def test_counts_match_rates():
    piece = lorenz_trials(n_conditions=5, trials_per_condition=40, n_neurons=10, n_time=30, seed=0)
    counts = sample_counts(piece, seed=0).values
    expected = piece["rate"].values * piece.attrs["dt_s"]
    assert counts.dtype.kind == "i"
    # Mean count per neuron matches the expected count within Poisson error.
    err = np.abs(counts.mean(axis=(0, 2)) - expected.mean(axis=(0, 2)))
    assert (err < 5 * np.sqrt(expected.mean(axis=(0, 2)) / (200 * 30)) + 1e-3).all()
