"""NLB metrics: against values worked out by hand, and against the benchmark's own code
(``nlb_tools.evaluation``, installed with ``pip install --no-deps nlb-tools==0.0.4``) to 1e-9."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.errors import InputError
from neurodag.latents.metrics import (
    bits_per_spike,
    condition_groups,
    condition_psth,
    fit_ridge,
    kfold_slices,
    poisson_log_likelihood,
    psth_r2,
    r2_columns,
    rate_r2,
    velocity_r2,
)

TOL = 1e-9


@pytest.fixture(scope="module")
def nlb():
    evaluation = pytest.importorskip("nlb_tools.evaluation")
    import logging

    logging.getLogger("nlb_tools.evaluation").setLevel(logging.ERROR)  # zero-rate warnings
    return evaluation


def poisson_data(seed, shape=(12, 20, 7)):
    rng = np.random.default_rng(seed)
    truth = rng.gamma(2.0, 0.4, size=shape)
    spikes = rng.poisson(truth).astype(float)
    rates = truth * rng.lognormal(0, 0.3, size=shape)
    return rates, spikes


# --- by hand -------------------------------------------------------------------------------------


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
    assert bits_per_spike(null * 1.5, spikes) < 0


def test_zero_rate_under_a_spike_costs_log_1e9():
    # One bin, one spike, rate 0 -> 1e-9: NLL = 1e-9 - log(1e-9); null rate 1: NLL = 1.
    spikes, rates = np.array([[[1.0]]]), np.array([[[0.0]]])
    expected = (1.0 - (1e-9 - np.log(1e-9))) / np.log(2)
    assert bits_per_spike(rates, spikes) == pytest.approx(expected, rel=1e-12)


def test_r2_columns_by_hand_and_constant_columns():
    true = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 2.0]])
    pred = np.array([[1.0, 0.0], [2.0, 1.0], [4.0, 2.0]])
    # column 0: SSres 1, SStot 2 -> 0.5; column 1: SSres 1, SStot 8/3 -> 5/8
    assert r2_columns(true, pred) == pytest.approx((0.5 + 5 / 8) / 2)
    # a constant true column scores 1 when matched, 0 otherwise, and stays in the average
    const = np.column_stack([true[:, 0], np.zeros(3)])
    assert r2_columns(const, np.column_stack([pred[:, 0], np.zeros(3)])) == pytest.approx(0.75)
    assert r2_columns(const, np.column_stack([pred[:, 0], np.ones(3)])) == pytest.approx(0.25)


def test_psth_r2_by_hand():
    # Two conditions x two trials, one neuron, two bins; predictions average to [1, 2] and [3, 5].
    rates = np.array([[[0.0], [2.0]], [[2.0], [2.0]], [[3.0], [5.0]], [[3.0], [5.0]]])
    condition = np.array([7, 7, 9, 9])
    true_psth = np.array([[[1.0], [2.0]], [[3.0], [4.0]]])
    # residual: only the last bin, (5 - 4)^2 = 1; total around mean 2.5: 2.25+0.25+0.25+2.25 = 5
    assert psth_r2(rates, true_psth, condition) == pytest.approx(1 - 1 / 5)


def test_conditions_sorted_and_missing_dropped():
    labels, groups = condition_groups(np.array([3.0, np.nan, 1.0, 3.0]))
    assert list(labels) == [1.0, 3.0]
    assert [list(g) for g in groups] == [[2], [0, 3]]
    labels, groups = condition_groups(np.array(["b", None, "a"], dtype=object))
    assert list(labels) == ["a", "b"] and [list(g) for g in groups] == [[2], [0]]


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


@pytest.mark.parametrize("n", [5, 7, 12, 23])
def test_kfold_slices_cover_rows_in_order(n):
    slices = kfold_slices(n, 5)
    covered = np.concatenate([np.arange(n)[s] for s in slices])
    np.testing.assert_array_equal(covered, np.arange(n))
    sizes = [s.stop - s.start for s in slices]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_velocity_r2_decodes_a_linear_readout():
    rng = np.random.default_rng(1)
    rates = rng.gamma(2.0, size=(30, 20, 8))
    velocity = rates @ rng.normal(size=(8, 2))
    noise_velocity = rng.normal(size=velocity.shape)
    assert velocity_r2(rates[:20], velocity[:20], rates[20:], velocity[20:]) > 0.99
    unrelated = velocity_r2(rates[:20], noise_velocity[:20], rates[20:], noise_velocity[20:])
    assert unrelated < 0.05


# --- bad input -----------------------------------------------------------------------------------


def test_bad_rates_are_refused_naming_the_array():
    rates, spikes = poisson_data(0, (3, 4, 2))
    nan_rates = rates.copy()
    nan_rates[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="rates.*NaN"):
        bits_per_spike(nan_rates, spikes)
    negative = rates.copy()
    negative[1, 2, 1] = -0.1
    with pytest.raises(InputError, match="rates.*negative"):
        bits_per_spike(negative, spikes)
    with pytest.raises(InputError, match=r"rates: shape \(3, 4, 1\) differs from spikes"):
        bits_per_spike(rates[..., :1], spikes)
    # NaN rates where the spikes are NaN too are fine (those bins are not evaluated)
    spikes_nan = spikes.copy()
    spikes_nan[0, 0, 0] = np.nan
    assert np.isfinite(bits_per_spike(nan_rates, spikes_nan))


def test_bad_decoder_and_psth_input_is_refused():
    rng = np.random.default_rng(2)
    rates, velocity = rng.gamma(2.0, size=(6, 5, 3)), rng.normal(size=(6, 5, 2))
    with pytest.raises(InputError, match="train_rates: shape"):
        velocity_r2(rates[:, :4], velocity, rates, velocity)
    bad = rates.copy()
    bad[2, 1, 0] = np.nan
    with pytest.raises(InputError, match="eval_rates: NaN"):
        velocity_r2(rates, velocity, bad, velocity)
    with pytest.raises(InputError, match="true_psth: shape"):
        psth_r2(rates, rates[:3], np.array([0, 0, 0, 1, 1, 1]))
    with pytest.raises(InputError, match="pred_rates: NaN"):
        psth_r2(bad, rates[:2], np.array([0, 0, 0, 1, 1, 1]))


def test_nlb_refuses_the_same_input(nlb):
    rates, spikes = poisson_data(0, (3, 4, 2))
    rates[0, 0, 0] = np.nan
    with pytest.raises(AssertionError, match="NaN rate"):
        nlb.bits_per_spike(rates, spikes)
    rates[0, 0, 0] = -1.0
    with pytest.raises(AssertionError, match="Negative rate"):
        nlb.bits_per_spike(rates, spikes)


# --- against nlb_tools ---------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_bits_per_spike_equals_nlb(seed):
    evaluation = pytest.importorskip("nlb_tools.evaluation")
    rates, spikes = poisson_data(seed)
    heldout, t_in = [4, 5, 6], 15
    co = bits_per_spike(rates[:, :t_in, heldout], spikes[:, :t_in, heldout])
    fp = bits_per_spike(rates[:, t_in:], spikes[:, t_in:])
    want_co = evaluation.bits_per_spike(rates[:, :t_in, heldout].copy(), spikes[:, :t_in, heldout])
    want_fp = evaluation.bits_per_spike(rates[:, t_in:].copy(), spikes[:, t_in:])
    assert co == pytest.approx(want_co, abs=TOL, rel=TOL)
    assert fp == pytest.approx(want_fp, abs=TOL, rel=TOL)


def test_bits_per_spike_edge_cases_equal_nlb(nlb):
    rates, spikes = poisson_data(5)
    spikes[:, :, 2] = 0.0  # a silent neuron: null rate 0 -> 1e-9
    hit = np.argwhere(spikes > 0)[:3]
    rates[tuple(hit.T)] = 0.0  # zero rate under a spike
    rates[0, 0, 2] = 0.0  # and under no spike
    spikes[[3, 7]] = np.nan  # NaN trials (e.g. held-out or unequal length)
    rates[3] = np.nan
    spikes[5, 10:, 1] = np.nan  # a NaN tail in one neuron
    ours = bits_per_spike(rates, spikes)
    assert np.isfinite(ours)
    assert ours == pytest.approx(nlb.bits_per_spike(rates.copy(), spikes), abs=TOL, rel=TOL)


def psth_case(seed, smoothing=1.5):
    """Trials in conditions (one trial with no condition, one condition with no evaluation trial,
    a silent neuron), NLB-formed PSTH over all trials, rates on the evaluation trials."""
    from neurodag.latents.smoothing import smooth

    rng = np.random.default_rng(seed)
    n_trial, n_time, n_neuron = 30, 16, 6
    condition = rng.integers(0, 4, n_trial).astype(float)
    condition[4] = np.nan
    evaluation = np.arange(n_trial) % 3 == 0
    condition[evaluation & (condition == 3)] = 2  # condition 3: no evaluation trial
    condition[~evaluation & (condition == 3)] = 3
    tuning = smooth(rng.gamma(2.0, 0.5, size=(4, n_time, n_neuron)), 2.0)  # smooth in time
    tuning[:, :, 5] = 0.0
    means = tuning[np.nan_to_num(condition).astype(int)]  # the unlabelled trial fires as in 0
    spikes = rng.poisson(means).astype(float)
    labels, psth = condition_psth(smooth(spikes, smoothing), condition)
    rates = means[evaluation] * rng.lognormal(0, 0.2, size=means[evaluation].shape)
    return rates, psth, condition[evaluation], labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psth_r2_equals_nlb(nlb, seed):
    rates, psth, eval_condition, labels = psth_case(seed)
    assert 3.0 in labels and 3.0 not in eval_condition
    eval_cond_idx = [np.flatnonzero(eval_condition == c) for c in labels]
    want = nlb.eval_psth(psth, rates, eval_cond_idx)
    assert psth_r2(rates, psth, eval_condition, labels) == pytest.approx(want, abs=TOL, rel=TOL)
    # NaN-padded PSTH bins (a shorter condition) are dropped as nlb drops them
    psth[1, -4:] = np.nan
    want = nlb.eval_psth(psth, rates, eval_cond_idx)
    assert psth_r2(rates, psth, eval_condition, labels) == pytest.approx(want, abs=TOL, rel=TOL)


def velocity_case(seed, n_trial=24, n_time=15, n_neuron=10):
    """Rates that carry a 2-D velocity of very different scales per dimension, plus noise: the
    uniform and the variance-weighted R2 differ, and the ridge penalty matters."""
    rng = np.random.default_rng(seed)
    latent = np.cumsum(rng.normal(size=(n_trial, n_time, 2)), axis=1)
    rates = np.exp(0.3 * latent @ rng.normal(size=(2, n_neuron)))
    rates = rates + rng.gamma(1.0, 0.5, size=rates.shape)
    velocity = latent * np.array([5.0, 0.2]) + rng.normal(size=latent.shape) * np.array([3, 0.3])
    return rates, velocity


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000))
def test_velocity_r2_equals_nlb(seed):
    evaluation = pytest.importorskip("nlb_tools.evaluation")
    rates, velocity = velocity_case(seed)
    train, test = slice(0, 16), slice(16, None)
    ours = velocity_r2(rates[train], velocity[train], rates[test], velocity[test])
    want = evaluation.velocity_decoding(
        rates[train],
        velocity[train],
        np.ones((16, 1), dtype=bool),
        rates[test],
        velocity[test],
        np.ones((8, 1), dtype=bool),
    )
    assert ours == pytest.approx(want, abs=TOL, rel=TOL)


def test_velocity_r2_edge_cases_equal_nlb(nlb):
    rates, velocity = velocity_case(11, n_trial=21)
    rates[:, :, 3] = 0.0  # a silent neuron
    velocity[2, 5:9] = np.nan  # NaN velocity bins, training ...
    velocity[17, :3] = np.nan  # ... and evaluation
    rates[17, :3] = np.nan  # rates there are not looked at
    train, test = slice(0, 15), slice(15, None)
    masks = (np.arange(21) % 2 == 0)[:, None] & np.array([True, False])
    masks[:, 1] = ~masks[:, 0]  # two decoders, as nlb's decode masks
    for tm, em in ((None, None), (masks[train], masks[test])):
        ours = velocity_r2(rates[train], velocity[train], rates[test], velocity[test], tm, em)
        want = nlb.velocity_decoding(
            rates[train],
            velocity[train],
            np.ones((15, 1), dtype=bool) if tm is None else tm,
            rates[test],
            velocity[test],
            np.ones((6, 1), dtype=bool) if em is None else em,
        )
        assert ours == pytest.approx(want, abs=TOL, rel=TOL)
