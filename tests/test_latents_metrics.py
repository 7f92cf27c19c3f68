"""NLB metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.latents.metrics import (
    bits_per_spike,
    fit_ridge,
    poisson_log_likelihood,
    psth_r2,
    r2_columns,
    rate_r2,
    velocity_r2,
)


def test_poisson_log_likelihood_by_hand():
    # log P(k=2 | r=3) = 2 log 3 - 3 - log 2
    assert poisson_log_likelihood(np.array([3.0]), np.array([2.0])) == pytest.approx(
        2 * np.log(3) - 3 - np.log(2)
    )


def test_bits_per_spike_by_hand():
    # One neuron, two bins with 1 and 3 spikes; the null rate is their mean, 2.
    # Model at the true counts: LL gain = (1 log 1 - 1 + 3 log 3 - 3) - (4 log 2 - 4)
    #                                   = 3 log 3 - 4 log 2, over 4 spikes, in bits.
    spikes = np.array([[[1.0], [3.0]]])
    expected = (3 * np.log(3) - 4 * np.log(2)) / 4 / np.log(2)
    assert bits_per_spike(spikes, spikes) == pytest.approx(expected)
    assert expected == pytest.approx(0.18872, abs=1e-5)


def test_bits_per_spike_null_is_zero_and_nan_bins_skipped():
    spikes = np.array([[[0.0, 2.0], [4.0, 2.0]], [[2.0, np.nan], [2.0, 2.0]]])
    null = np.broadcast_to(np.nanmean(spikes, axis=(0, 1)), spikes.shape)
    assert bits_per_spike(null, spikes) == pytest.approx(0.0, abs=1e-12)
    worse = null * 1.5
    assert bits_per_spike(worse, spikes) < 0


def test_bits_per_spike_per_neuron_null():
    # Two neurons with different constant rates: a model that knows each neuron's mean is the null.
    spikes = np.array([[[1.0, 5.0], [3.0, 7.0]]])
    model = np.array([[[2.0, 6.0], [2.0, 6.0]]])
    assert bits_per_spike(model, spikes) == pytest.approx(0.0, abs=1e-12)


def test_r2_columns_by_hand():
    true = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 2.0]])
    pred = np.array([[1.0, 0.0], [2.0, 1.0], [4.0, 2.0]])
    # column 0: SSres 1, SStot 2 -> 0.5; column 1: SSres 1, SStot 8/3 -> 5/8
    assert r2_columns(true, pred) == pytest.approx((0.5 + 5 / 8) / 2)
    assert r2_columns(true, pred, "variance") == pytest.approx(1 - 2 / (2 + 8 / 3))


def test_psth_r2_by_hand():
    # Two conditions x two trials, one neuron, two bins; predictions average to [1, 2] and [3, 5].
    rates = np.array([[[0.0], [2.0]], [[2.0], [2.0]], [[3.0], [5.0]], [[3.0], [5.0]]])
    condition = np.array([7, 7, 9, 9])
    true_psth = np.array([[[1.0], [2.0]], [[3.0], [4.0]]])
    # residual: only the last bin, (5 - 4)^2 = 1; total around mean 2.5: 2.25+0.25+0.25+2.25 = 5
    assert psth_r2(rates, true_psth, condition) == pytest.approx(1 - 1 / 5)


def test_rate_r2_perfect_and_mean():
    rng = np.random.default_rng(0)
    true = rng.gamma(2.0, size=(5, 6, 3))
    assert rate_r2(true, true) == pytest.approx(1.0)
    mean = np.broadcast_to(true.reshape(-1, 3).mean(0), true.shape)
    assert rate_r2(mean, true) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_ridge_without_penalty_is_least_squares(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 3))
    y = x @ rng.normal(size=(3, 2)) + 1.5 + 0.1 * rng.normal(size=(40, 2))
    w, b = fit_ridge(x, y, alpha=0.0)
    design = np.column_stack([x, np.ones(40)])
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(w, solution[:3], atol=1e-8)
    np.testing.assert_allclose(b, solution[3], atol=1e-8)


def test_velocity_r2_decodes_a_linear_readout():
    rng = np.random.default_rng(1)
    rates = rng.gamma(2.0, size=(30, 20, 8))
    velocity = rates @ rng.normal(size=(8, 2))
    noise_velocity = rng.normal(size=velocity.shape)
    assert velocity_r2(rates[:20], velocity[:20], rates[20:], velocity[20:]) > 0.99
    unrelated = velocity_r2(rates[:20], noise_velocity[:20], rates[20:], noise_velocity[20:])
    assert unrelated < 0.05
